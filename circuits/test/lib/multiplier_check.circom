pragma circom 2.1.0;

// The tiny test circuit's template: proves knowledge of two private factors a, b whose product is the
// public input c, and outputs a Poseidon-free digest d = a + b * pad[0] + pad[1].
// `a * b === c` makes an input with the wrong product violate the constraints.
template MultiplierCheck() {
    signal input a;
    signal input b;
    signal input c;
    signal input pad[2];
    signal output d;

    signal ab <== a * b;
    ab === c;
    signal t <== b * pad[0];
    d <== a + t + pad[1];
}
