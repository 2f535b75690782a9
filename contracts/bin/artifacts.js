#!/usr/bin/env node
// Exports the ABI and bytecode of every deployable contract from forge's out/ into artifacts/,
// which the Rust crates embed (alloy `sol!`). With --check, fails if the committed artifacts
// differ from a fresh build instead of writing them.
'use strict';
const fs = require('fs');
const path = require('path');

const CONTRACTS = [
  'NodeRegistry', 'ControllerRegistry', 'Users', 'AppRegistry', 'DataTypeRegistry',
  'Consents', 'DataRegistry', 'Exchange', 'TestToken',
];
const root = path.join(__dirname, '..');
const check = process.argv.includes('--check');
const stale = [];

for (const name of CONTRACTS) {
  const built = JSON.parse(fs.readFileSync(path.join(root, 'out', `${name}.sol`, `${name}.json`), 'utf8'));
  const artifact = {
    contractName: name,
    abi: built.abi,
    bytecode: { object: built.bytecode.object },
    deployedBytecode: { object: built.deployedBytecode.object },
  };
  const text = JSON.stringify(artifact, null, 2) + '\n';
  const target = path.join(root, 'artifacts', `${name}.json`);
  if (check) {
    const committed = fs.existsSync(target) ? fs.readFileSync(target, 'utf8') : '';
    if (committed !== text) stale.push(name);
  } else {
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, text);
  }
}

if (stale.length) {
  console.error(`contracts/artifacts is out of date for: ${stale.join(', ')}`);
  console.error('run `contracts/check --write-artifacts` and commit the result');
  process.exit(1);
}
console.log(check ? `artifacts up to date (${CONTRACTS.length} contracts)` : `wrote ${CONTRACTS.length} artifacts`);
