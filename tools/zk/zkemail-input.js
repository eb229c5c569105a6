#!/usr/bin/env node
// The circuit input of circuits/zkemail/lib/twitter_verifier.circom for one DKIM-signed email, made with
// @zk-email/helpers (pinned in package.json). Called by plugins/module_utils/zkemail.py.
//
// Standard input: one JSON object
//   {email: base64 of the raw email, dkim_txt: "v=DKIM1; k=rsa; p=...", max_header_length, max_body_length,
//    expose_from: bool, address: decimal string, selector: body text from which the body is hashed in circuit,
//    public: optional, true to print instead the public signals a proof for this email must carry}
// Standard output: the circuit input JSON (or the public signals). Errors: one line on standard error, exit 2 (bad input) or 1.
// The key comes from the request, never from DNS: this script makes no network request.
"use strict";

const forge = require("node-forge");
const { DkimVerifier } = require("@zk-email/helpers/dist/lib/mailauth/dkim-verifier");
const { writeToStream } = require("@zk-email/helpers/dist/lib/mailauth/tools");
const { generateEmailVerifierInputsFromDKIMResult } = require("@zk-email/helpers/dist/input-generators");
const { poseidonLarge } = require("@zk-email/helpers/dist/hash");

// PackBytes in @zk-email/circuits: 31 bytes per field element, the first byte lowest.
function pack(bytes, chunks) {
  const out = [];
  for (let c = 0; c < chunks; c++) {
    let v = 0n;
    for (let i = Math.min(bytes.length, (c + 1) * 31) - 1; i >= c * 31; i--) v = (v << 8n) | BigInt(bytes[i]);
    out.push(v.toString());
  }
  return out;
}

// The circuit's public signals: pubkeyHash, twitterUsername, [fromEmailAddrPacks[9]], address.
async function publicSignals(res, inputs, req) {
  const body = Buffer.from(inputs.emailBody.map(Number));
  const at = Number(inputs.twitterUsernameIndex);
  let end = at;
  while (end < body.length && /[A-Za-z0-9_]/.test(String.fromCharCode(body[end]))) end++;
  const out = [(await poseidonLarge(res.publicKey, 9, 242)).toString(), ...pack(body.subarray(at, end), 1)];
  if (req.expose_from) {
    const header = Buffer.from(inputs.emailHeader.map(Number));
    const from = Number(inputs.fromEmailIndex);
    let stop = from;
    while (stop < header.length && /[A-Za-z0-9._%+@-]/.test(String.fromCharCode(header[stop]))) stop++;
    out.push(...pack(header.subarray(from, stop), 9));
  }
  out.push(inputs.address);
  return out;
}

class BadInput extends Error {}

function readStdin() {
  return new Promise((resolve, reject) => {
    const chunks = [];
    process.stdin.on("data", (c) => chunks.push(c));
    process.stdin.on("end", () => resolve(Buffer.concat(chunks)));
    process.stdin.on("error", reject);
  });
}

function paddedLength(bytes) {
  // SHA-256 padding: the message, one 0x80 byte, zeros, the 8-byte length; a multiple of 64.
  return Math.ceil((bytes + 9) / 64) * 64;
}

async function dkimResult(email, txt) {
  const verifier = new DkimVerifier({ resolver: async () => [[txt]] });
  await writeToStream(verifier, email);
  const r = verifier.results && verifier.results[0];
  if (!r) throw new BadInput("the email has no DKIM-Signature header");
  if (r.status.result !== "pass") {
    throw new BadInput(`DKIM verification failed: ${r.status.comment || r.status.result}`);
  }
  // The circuit verifies rsa-sha256 only.
  if (r.algo && !/^rsa-sha256$/i.test(r.algo)) throw new BadInput(`the signature uses ${r.algo}, not rsa-sha256`);
  const pub = forge.pki.publicKeyFromPem(r.publicKey.toString());
  return {
    signature: BigInt(`0x${Buffer.from(r.signature, "base64").toString("hex")}`),
    headers: r.status.signedHeaders || r.signedHeaders,
    body: r.body,
    bodyHash: r.bodyHash,
    signingDomain: r.signingDomain,
    publicKey: BigInt(pub.n.toString()),
    selector: r.selector,
    algo: r.algo,
    format: r.format,
    modulusLength: r.modulusLength,
  };
}

async function main() {
  let req;
  try {
    req = JSON.parse((await readStdin()).toString("utf8"));
  } catch (e) {
    throw new BadInput("standard input is not one JSON object");
  }
  for (const k of ["email", "dkim_txt", "max_header_length", "max_body_length", "address", "selector"]) {
    if (req[k] === undefined) throw new BadInput(`the request has no '${k}'`);
  }
  const email = Buffer.from(req.email, "base64");
  const res = await dkimResult(email, req.dkim_txt);
  if (res.modulusLength !== undefined && res.modulusLength !== 2048) {
    throw new BadInput(`the DKIM key has ${res.modulusLength} bits; the circuit takes 2048-bit keys`);
  }
  const header = paddedLength(res.headers.length);
  // The circuit range-checks each padded length to log2(max) bits: it must be below the maximum.
  if (header >= req.max_header_length) {
    throw new BadInput(
      `the signed header is too long: ${res.headers.length} bytes, ${header} padded; ` +
        `the circuit takes at most ${req.max_header_length - 64} padded`,
    );
  }
  const bodyText = res.body.toString("latin1");
  const at = bodyText.indexOf(req.selector);
  if (at < 0) throw new BadInput(`the body does not contain '${req.selector}'`);
  const precomputed = Math.floor(at / 64) * 64;
  const remaining = paddedLength(res.body.length) - precomputed;
  if (remaining >= req.max_body_length) {
    throw new BadInput(
      `the body is too long: ${res.body.length - precomputed} bytes from the hashed part on, ` +
        `${remaining} padded; the circuit takes at most ${req.max_body_length - 64} padded`,
    );
  }
  const inputs = generateEmailVerifierInputsFromDKIMResult(res, {
    maxHeadersLength: req.max_header_length,
    maxBodyLength: req.max_body_length,
    shaPrecomputeSelector: req.selector,
  });
  // The helper pads the whole body, so the part after the precomputed SHA can be longer than the circuit's
  // array; past emailBodyLength it is zeros (checked above to fit), so it is cut to the circuit's size.
  inputs.emailBody = inputs.emailBody.slice(0, req.max_body_length);
  const body = Buffer.from(inputs.emailBody.map(Number));
  const handleAt = body.indexOf(Buffer.from(req.selector, "latin1"));
  if (handleAt < 0) throw new BadInput("the handle is not in the part of the body hashed in the circuit");
  inputs.twitterUsernameIndex = String(handleAt + Buffer.byteLength(req.selector, "latin1"));
  inputs.address = String(BigInt(req.address));
  if (req.expose_from) {
    const headerText = res.headers.toString("latin1");
    const from = /(?:^|\r\n)from:[^\r\n]*?<?([A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+)>?\r\n/i.exec(headerText);
    if (!from) throw new BadInput("the signed header has no From address");
    inputs.fromEmailIndex = String(from.index + from[0].indexOf(from[1]));
  }
  process.stdout.write(JSON.stringify(req.public ? await publicSignals(res, inputs, req) : inputs));
}

main().catch((e) => {
  process.stderr.write(`zkemail-input: ${e.message}\n`);
  process.exit(e instanceof BadInput ? 2 : 1);
});
