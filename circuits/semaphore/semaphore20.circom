pragma circom 2.1.5;

// Semaphore v4 (from @semaphore-protocol/circuits, pinned in tools/zk/package.json) with MAX_DEPTH 20:
// the kit's reference circuit. Include paths (the pipeline passes them):
//   tools/zk/node_modules/@semaphore-protocol/circuits/src
//   tools/zk/node_modules/circomlib/circuits
//   tools/zk/node_modules/@zk-kit/binary-merkle-root.circom/src
include "semaphore.circom";

component main {public [message, scope]} = Semaphore(20);
