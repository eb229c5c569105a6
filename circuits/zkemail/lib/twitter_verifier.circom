pragma circom 2.1.6;

include "@zk-email/circuits/email-verifier.circom";
include "@zk-email/circuits/utils/regex.circom";
include "@zk-email/zk-regex-circom/circuits/common/from_addr_regex.circom";
include "./twitter_handle_regex.circom";

// A proof-of-twitter-style circuit (the zkEmail benchmark of the published study) from the npm packages
// @zk-email/circuits and @zk-email/zk-regex-circom, pinned in tools/zk/package.json. It proves that a DKIM
// signature by the key `pubkey` covers a header whose body hash matches a body saying
// "email was meant for @HANDLE", and reveals HANDLE (packed into one field element), the Poseidon hash of
// the key and, with exposeFrom = 1, the From address (packed into 9 field elements).
//
// Same inputs and outputs as proof-of-twitter's TwitterVerifier; its parameters:
//   maxHeadersLength, maxBodyLength  multiples of 64 (proof-of-twitter: 1024 and 1536)
//   n, k                             RSA limbs (121 x 17 for 2048-bit keys)
//   exposeFrom                       1 adds zk-regex's FromAddrRegex over the header
// The body is hashed in the circuit from the point the input generator chose (precomputedSHA is the SHA-256
// state of the part before it), as proof-of-twitter does. Soft line breaks are not removed (the last
// EmailVerifier flag is 0, as in proof-of-twitter).
template TwitterVerifier(maxHeadersLength, maxBodyLength, n, k, exposeFrom) {
    assert(exposeFrom < 2);

    signal input emailHeader[maxHeadersLength];
    signal input emailHeaderLength;
    signal input pubkey[k];
    signal input signature[k];
    signal input emailBody[maxBodyLength];
    signal input emailBodyLength;
    signal input bodyHashIndex;
    signal input precomputedSHA[32];
    signal input twitterUsernameIndex;
    // Binds the proof to a value of the client's choice (proof-of-twitter: an Ethereum address).
    signal input address;

    signal output pubkeyHash;
    signal output twitterUsername;

    component EV = EmailVerifier(maxHeadersLength, maxBodyLength, n, k, 0, 0, 0, 0);
    EV.emailHeader <== emailHeader;
    EV.pubkey <== pubkey;
    EV.signature <== signature;
    EV.emailHeaderLength <== emailHeaderLength;
    EV.bodyHashIndex <== bodyHashIndex;
    EV.precomputedSHA <== precomputedSHA;
    EV.emailBody <== emailBody;
    EV.emailBodyLength <== emailBodyLength;
    pubkeyHash <== EV.pubkeyHash;

    if (exposeFrom) {
        signal input fromEmailIndex;
        signal (fromEmailFound, fromEmailReveal[maxHeadersLength]) <== FromAddrRegex(maxHeadersLength)(emailHeader);
        fromEmailFound === 1;
        var maxEmailLength = 255;
        signal output fromEmailAddrPacks[9] <== PackRegexReveal(maxHeadersLength, maxEmailLength)(fromEmailReveal, fromEmailIndex);
    }

    signal (twitterFound, twitterReveal[maxBodyLength]) <== TwitterHandleRegex(maxBodyLength)(emailBody);
    twitterFound === 1;

    // A longer run than this makes SelectRegexReveal's constraints fail: no proof for such a body.
    var maxTwitterUsernameLength = 21;
    signal twitterUsernamePacks[1] <== PackRegexReveal(maxBodyLength, maxTwitterUsernameLength)(twitterReveal, twitterUsernameIndex);
    twitterUsername <== twitterUsernamePacks[0];

    // Constrain address so that it is part of the proof.
    signal addressSquared <== address * address;
}
