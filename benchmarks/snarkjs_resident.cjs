// bin/kit bench session: snarkjs as a resident prover (the other prover a session service could keep loaded).
//   node snarkjs_resident.cjs ZKEY WTNS RUNS
// Loads the proving key and the bn128 curve once, then proves the same witness RUNS times in this process and
// prints one JSON line: {"load_s", "prove_s": [...]}. The witness is computed beforehand (as the resident
// groth16py worker's is), so both provers are timed on the same work.
"use strict";
const fs = require("fs");
const path = require("path");

const snarkjs = require(path.join(__dirname, "..", "tools", "zk", "node_modules", "snarkjs"));

async function main() {
  const [zkeyPath, wtnsPath, runsText] = process.argv.slice(2);
  const runs = Number.parseInt(runsText || "5", 10);
  if (!zkeyPath || !wtnsPath || !(runs > 0)) {
    process.stderr.write("usage: node snarkjs_resident.cjs ZKEY WTNS RUNS\n");
    process.exit(2);
  }
  let t = process.hrtime.bigint();
  const zkey = { type: "mem", data: new Uint8Array(fs.readFileSync(zkeyPath)) };
  const wtns = { type: "mem", data: new Uint8Array(fs.readFileSync(wtnsPath)) };
  await snarkjs.groth16.prove(zkey, wtns); // the first proof builds the curve (its WASM and threads)
  const load = Number(process.hrtime.bigint() - t) / 1e9;
  const times = [];
  for (let i = 0; i < runs; i += 1) {
    t = process.hrtime.bigint();
    await snarkjs.groth16.prove(zkey, wtns);
    times.push(Number(process.hrtime.bigint() - t) / 1e9);
  }
  process.stdout.write(JSON.stringify({ load_s: load, prove_s: times }) + "\n");
  if (globalThis.curve_bn128) await globalThis.curve_bn128.terminate();
}

main().catch((err) => {
  process.stderr.write(`snarkjs_resident: ${err && err.message ? err.message : err}\n`);
  process.exit(1);
});
