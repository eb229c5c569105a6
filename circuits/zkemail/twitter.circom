pragma circom 2.1.6;

// proof-of-twitter's size (header 1024, body 1536, 2048-bit RSA) with the From address exposed: the
// full-size zkEmail benchmark (bin/kit bench zkemail). Include path: tools/zk/node_modules.
include "lib/twitter_verifier.circom";

component main { public [ address ] } = TwitterVerifier(1024, 1536, 121, 17, 1);
