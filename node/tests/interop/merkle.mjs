// Builds @openzeppelin/merkle-tree's StandardMerkleTree over bundle records and prints its root,
// proofs and a multiproof, for comparison with the node's implementation.
// stdin: { "values": [[userId, index, ciphertextHash], ...], "proofs": [i, ...], "multi": [i, ...] }
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '../../../contracts/package.json'));
const { StandardMerkleTree } = require('@openzeppelin/merkle-tree');

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const input = JSON.parse(Buffer.concat(chunks).toString('utf8'));

const values = input.values.map(([u, i, h]) => [u, BigInt(i), h]);
const tree = StandardMerkleTree.of(values, ['bytes32', 'uint64', 'bytes32']);
const multi = tree.getMultiProof(input.multi);
console.log(JSON.stringify({
  root: tree.root,
  leaves: values.map((v) => tree.leafHash(v)),
  proofs: input.proofs.map((i) => tree.getProof(i)),
  multi: {
    leaves: multi.leaves.map((v) => tree.leafHash(v)),
    proof: multi.proof,
    proofFlags: multi.proofFlags,
  },
}));
