#!/usr/bin/env node
// Semaphore v4 circuit input generator for tests and the demo (identity, group, Merkle proof).
// Prints the circuit input JSON (secret, merkleProofLength, merkleProofIndex, merkleProofSiblings[MAX_DEPTH],
// message, scope) on standard output, or writes it to --out (mode 0600). The input holds the identity's
// secret: treat it as a secret. --expect prints the public signals a proof must carry (no secret) to stderr.
//
//   node semaphore-input.js [--seed TEXT] [--members N] [--index I] [--depth 20]
//                           [--message M] [--scope S] [--out FILE] [--expect] [--expect-out FILE]
// --expect-out writes the public signals a proof of this input must carry as a JSON list in snarkjs order
// [merkleRoot, nullifier, message, scope], null where any value is accepted (the nullifier), for
// bin/proof-receipt verify --expect.
"use strict";
const fs = require("fs");
const { Identity } = require("@semaphore-protocol/identity");
const { Group } = require("@semaphore-protocol/group");

function args(argv) {
  const o = { seed: "tee-proof-kit demo identity", members: 4, index: 1, depth: 20, message: "1", scope: "2" };
  for (let i = 2; i < argv.length; i++) {
    const k = argv[i].replace(/^--/, "");
    if (k === "expect") { o.expect = true; continue; }
    if (!(k in o) && k !== "out" && k !== "expect-out") throw new Error(`unknown option --${k}`);
    o[k] = argv[++i];
  }
  for (const k of ["members", "index", "depth"]) o[k] = Number(o[k]);
  return o;
}

// A message or scope is a field element: decimal digits as they are, other text as its UTF-8 bytes (< 32).
function field(text) {
  if (/^[0-9]+$/.test(text)) return BigInt(text);
  const bytes = Buffer.from(text, "utf8");
  if (bytes.length > 31) throw new Error("message/scope text longer than 31 bytes: pass a number instead");
  return BigInt("0x" + (bytes.toString("hex") || "0"));
}

function main() {
  const o = args(process.argv);
  if (!(o.members >= 1) || !(o.index >= 0 && o.index < o.members)) throw new Error("need 0 <= index < members");
  const me = new Identity(o.seed);
  const members = [];
  for (let i = 0; i < o.members; i++) {
    members.push(i === o.index ? me.commitment : new Identity(`${o.seed} / member ${i}`).commitment);
  }
  const group = new Group(members);
  const proof = group.generateMerkleProof(o.index);
  if (proof.siblings.length > o.depth) throw new Error(`group too deep for MAX_DEPTH ${o.depth}`);
  const siblings = proof.siblings.map(String);
  while (siblings.length < o.depth) siblings.push("0");
  const input = {
    secret: me.secretScalar.toString(),
    merkleProofLength: String(proof.siblings.length),
    merkleProofIndex: String(proof.index),
    merkleProofSiblings: siblings,
    message: field(o.message).toString(),
    scope: field(o.scope).toString(),
  };
  const text = JSON.stringify(input, null, 1) + "\n";
  if (o.out) fs.writeFileSync(o.out, text, { mode: 0o600 });
  else process.stdout.write(text);
  if (o["expect-out"]) {
    const expected = [group.root.toString(), null, input.message, input.scope];
    fs.writeFileSync(o["expect-out"], JSON.stringify(expected) + "\n", { mode: 0o644 });
  }
  if (o.expect) {
    // Public signals in snarkjs order: outputs (merkleRoot, nullifier) then public inputs (message, scope).
    process.stderr.write(JSON.stringify({ merkleRoot: group.root.toString(), message: input.message, scope: input.scope }) + "\n");
  }
}

try {
  main();
} catch (e) {
  process.stderr.write(`semaphore-input: error: ${e.message}\n`);
  process.exit(2);
}
