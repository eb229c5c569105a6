pragma circom 2.1.6;

// The same templates as twitter.circom on short headers and bodies: the instance the test command proves
// (tests/zk). Include path: tools/zk/node_modules.
include "lib/twitter_verifier.circom";

component main { public [ address ] } = TwitterVerifier(256, 128, 121, 17, 1);
