// File: stream_ordering.h
//
// StreamOrdering: how a pool over device memory makes a block freed on one
// stream safe to hand to another. PoolAllocator is generic (it manages
// address ranges from any upstream Allocator); for device memory it is given
// one of these, and for host memory none (host allocation is not
// stream-ordered).
//
// A block freed on stream P is reused at once by allocations on P (the work
// of P runs in order). Handed to an allocation on stream C != P, the pool
// first calls OrderAfter(C, P): the CUDA implementation records an event on P
// and makes C wait for it, so C's later work cannot touch the block before
// P's earlier work is done, and the host never blocks.

#ifndef MEMORY_STREAM_ORDERING_H_
#define MEMORY_STREAM_ORDERING_H_

#include "absl/status/status.h"
#include "memory/allocator.h"

namespace dilated {
namespace memory {

class StreamOrdering {
 public:
  virtual ~StreamOrdering() = default;

  // Makes all work submitted to `consumer` after this call wait for all work
  // submitted to `producer` before it, without blocking the host.
  virtual absl::Status OrderAfter(StreamHandle consumer,
                                  StreamHandle producer) = 0;

  // Blocks the host until all work submitted to every stream of the device
  // is done. The pool calls it before it returns freed memory to the
  // upstream or merges blocks freed on different streams.
  virtual absl::Status SynchronizeAll() = 0;
};

}  // namespace memory
}  // namespace dilated

#endif  // MEMORY_STREAM_ORDERING_H_
