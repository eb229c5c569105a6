pragma circom 2.1.0;

// Tiny test circuit for the kit's tests. Its template is found through an include path
// (circuits/test/lib), as Semaphore's are, so that the tests exercise include resolution too.
include "multiplier_check.circom";

component main {public [c]} = MultiplierCheck();
