pragma circom 2.1.6;

include "@zk-email/zk-regex-circom/circuits/regex_helpers.circom";

// regex: email was meant for @([A-Za-z0-9_]+)   (the handle, the group in brackets, is revealed)
//
// The same shape as the zk-regex generated circuits in @zk-email/zk-regex-circom/circuits/common (a state
// vector per byte, built from that package's IsEqual / AND / MultiOR / LessEqThan helpers, with the output
// pair `(out, reveal0[msg_bytes])`). proof-of-twitter's own regex circuit is in its repository, not on npm,
// and zk-regex's compiler is not published to npm either, so this one is written by hand for one pattern:
// a literal prefix, then one public run of handle characters.
//
// The start state is active at every byte, so the prefix is found wherever it starts. State j (1..P) means
// "the last j bytes were the first j bytes of the prefix"; state H means "the last byte was a handle byte
// that follows the prefix or another handle byte". reveal0[i] is msg[i] where state H holds after msg[i],
// else 0. The caller bounds the revealed run with SelectRegexReveal / PackRegexReveal (which also refuse a
// run longer than their maximum).
//
// msg must hold bytes: EmailVerifier's SHA-256 of the body already constrains every body byte to 8 bits
// (LessEqThan(8) below is only sound on such inputs).
template TwitterHandleRegex(msg_bytes) {
    signal input msg[msg_bytes];
    signal output out;
    signal output reveal0[msg_bytes];

    // "email was meant for @"
    var P = 21;
    var prefix[21] = [101, 109, 97, 105, 108, 32, 119, 97, 115, 32, 109, 101, 97, 110, 116, 32, 102, 111, 114, 32, 64];

    signal states[msg_bytes + 1][P + 2];  // [0] start, [1..P] prefix, [P+1] handle
    component eq[msg_bytes][P];
    component and_prefix[msg_bytes][P];
    signal digit[msg_bytes];
    signal upper[msg_bytes];
    signal lower[msg_bytes];
    signal underscore[msg_bytes];
    signal is_handle[msg_bytes];
    signal handle_from[msg_bytes];

    for (var j = 1; j < P + 2; j++) {
        states[0][j] <== 0;
    }
    for (var i = 0; i < msg_bytes; i++) {
        states[i][0] <== 1;
        for (var j = 0; j < P; j++) {
            eq[i][j] = IsEqual();
            eq[i][j].in[0] <== msg[i];
            eq[i][j].in[1] <== prefix[j];
            and_prefix[i][j] = AND();
            and_prefix[i][j].a <== states[i][j];
            and_prefix[i][j].b <== eq[i][j].out;
            states[i + 1][j + 1] <== and_prefix[i][j].out;
        }
        // [0-9] | [A-Z] | _ | [a-z]
        digit[i] <== AND()(LessEqThan(8)([48, msg[i]]), LessEqThan(8)([msg[i], 57]));
        upper[i] <== AND()(LessEqThan(8)([65, msg[i]]), LessEqThan(8)([msg[i], 90]));
        lower[i] <== AND()(LessEqThan(8)([97, msg[i]]), LessEqThan(8)([msg[i], 122]));
        underscore[i] <== IsEqual()([msg[i], 95]);
        is_handle[i] <== MultiOR(4)([digit[i], upper[i], lower[i], underscore[i]]);
        // states[i][P] (after '@') and states[i][P + 1] (after a handle byte) never hold together: '@' is not
        // a handle byte. Their sum is therefore 0 or 1.
        handle_from[i] <== states[i][P] + states[i][P + 1];
        states[i + 1][P + 1] <== is_handle[i] * handle_from[i];
        reveal0[i] <== msg[i] * states[i + 1][P + 1];
    }

    component found = MultiOR(msg_bytes);
    for (var i = 0; i < msg_bytes; i++) {
        found.in[i] <== states[i + 1][P + 1];
    }
    out <== found.out;
}
