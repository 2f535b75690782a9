// A js-libp2p peer for interop tests: TCP + noise + yamux, identify, ping and gossipsub.
//
// Input (stdin, JSON): { "privateKey": hex secp256k1 secret, "dial": multiaddr with /p2p/,
//                        "topic": gossip topic, "timeoutMs": number }
// Output (stdout, one JSON object per line):
//   { "peerId" }                                  once started
//   { "identified": { agent, protocols } }        after identify with the dialled peer
//   { "pingMs" }                                  after a ping round trip
//   { "message": hex data, "from" }            for the first message on the topic, then exit 0
// Exits 2 when nothing arrived before the timeout.

import './polyfill.mjs'
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { gossipsub } from '@chainsafe/libp2p-gossipsub'
import { privateKeyFromRaw } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'

const input = JSON.parse(await new Promise((resolve) => {
  let data = ''
  process.stdin.on('data', (chunk) => { data += chunk })
  process.stdin.on('end', () => resolve(data))
}))
const out = (value) => process.stdout.write(JSON.stringify(value) + '\n')

const privateKey = privateKeyFromRaw(Uint8Array.from(Buffer.from(input.privateKey.replace(/^0x/, ''), 'hex')))
const node = await createLibp2p({
  privateKey,
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: {
    identify: identify(),
    ping: ping(),
    pubsub: gossipsub({ allowPublishToZeroTopicPeers: true, emitSelf: false }),
  },
})
out({ peerId: node.peerId.toString() })

const timer = setTimeout(async () => {
  out({ error: 'timed out' })
  await node.stop()
  process.exit(2)
}, input.timeoutMs ?? 60000)

node.addEventListener('peer:identify', (event) => {
  out({ identified: { agent: event.detail.agentVersion, protocols: event.detail.protocols } })
})
node.services.pubsub.subscribe(input.topic)
node.services.pubsub.addEventListener('message', async (event) => {
  if (event.detail.topic !== input.topic) return
  out({ message: Buffer.from(event.detail.data).toString('hex'), from: event.detail.from?.toString() })
  clearTimeout(timer)
  await node.stop()
  process.exit(0)
})

const target = multiaddr(input.dial)
await node.dial(target)
const rtt = await node.services.ping.ping(target)
out({ pingMs: rtt })
