// Signs or verifies an airbloc ConsentBatch with viem, the way a wallet or web app would.
// Reads one JSON object on stdin:
//   { "mode": "sign" | "verify", "privateKey"?, "address"?, "signature"?,
//     "chainId", "verifyingContract", "message": { user, consents: [...], nonce, deadline } }
// Prints { "signature": "0x…" } or { "valid": true|false }.
import { privateKeyToAccount } from 'viem/accounts';
import { verifyTypedData } from 'viem';

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const input = JSON.parse(Buffer.concat(chunks).toString('utf8'));

const typed = {
  domain: {
    name: 'airbloc Consents',
    version: '1',
    chainId: BigInt(input.chainId),
    verifyingContract: input.verifyingContract,
  },
  types: {
    Consent: [
      { name: 'app', type: 'bytes32' },
      { name: 'action', type: 'uint8' },
      { name: 'dataType', type: 'bytes32' },
      { name: 'allowed', type: 'bool' },
    ],
    ConsentBatch: [
      { name: 'user', type: 'bytes32' },
      { name: 'consents', type: 'Consent[]' },
      { name: 'nonce', type: 'uint256' },
      { name: 'deadline', type: 'uint256' },
    ],
  },
  primaryType: 'ConsentBatch',
  message: {
    ...input.message,
    nonce: BigInt(input.message.nonce),
    deadline: BigInt(input.message.deadline),
  },
};

if (input.mode === 'sign') {
  const account = privateKeyToAccount(input.privateKey);
  console.log(JSON.stringify({ signature: await account.signTypedData(typed) }));
} else {
  const valid = await verifyTypedData({ ...typed, address: input.address, signature: input.signature });
  console.log(JSON.stringify({ valid }));
}
