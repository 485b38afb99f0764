// File: shard_runner.h
//
// One rank's part of a sequence-parallel call (docs/DISTRIBUTED.md): it
// computes the rows of its shard of the single-process function, exactly,
// talking to the other ranks through a Communicator.
//
// For every group, the whole segments inside each piece of the shard run as
// one local kernel call. A segment that crosses a piece boundary
// (shard_plan.h) needs the selected K/V rows the other ranks hold:
//   - all-gather ("distributed"): each rank sends its runs of the segment to
//     the ranks that attend them (under a causal mask only the ranks with a
//     later run), then attends its queries to the gathered keys;
//   - ring ("ring"): the blocks of the segment's ranks (their runs) travel
//     around them, one step at a time, the next block in flight while the
//     current one is attended; memory holds two blocks, not the segment.
// When every run has the same size (and every rank as many runs), each of
// the rank's runs attends each run before it (all of them without a causal
// mask) with a square kernel call, and the partial results merge exactly by
// their log-sum-exp. Otherwise (a segment straddling pieces unevenly) the
// rank gathers the segment's rows up to its last needed key and attends
// them in one call whose other query rows are zero and discarded: exact, at
// the price of the discarded rows' arithmetic. The backward pass follows
// the same plan; the key gradients go back to the ranks that own the keys
// and are summed there.

#ifndef DISTRIBUTED_SHARD_RUNNER_H_
#define DISTRIBUTED_SHARD_RUNNER_H_

#include "absl/status/status.h"
#include "attention/config.h"
#include "distributed/communicator.h"
#include "distributed/local_kernels.h"
#include "kernels/dilated_params.h"

namespace dilated {
namespace distributed {

enum class SequenceParallelAlgorithm { kAllGather, kRing };

// Writes the shard's out (and lse) for the shard's q, k, v in `params`
// (seq_len = the shard's length; the sequence has comm.size() * seq_len
// positions, placed by `placement`). REQUIRES: fixed-length layout, every
// rank calling with the same configuration and shapes.
absl::Status ShardForward(const kernels::ForwardParams& params,
                          SequenceParallelAlgorithm algorithm,
                          ShardPlacement placement, Communicator& comm,
                          LocalKernels& local);

// Writes the shard's grad_q, grad_k, grad_v. REQUIRES: as ShardForward;
// params.forward.out and lse as ShardForward wrote them.
absl::Status ShardBackward(const kernels::BackwardParams& params,
                           SequenceParallelAlgorithm algorithm,
                           ShardPlacement placement, Communicator& comm,
                           LocalKernels& local);

}  // namespace distributed
}  // namespace dilated

#endif  // DISTRIBUTED_SHARD_RUNNER_H_
