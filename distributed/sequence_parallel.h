// File: sequence_parallel.h
//
// "distributed" and "ring": dilated attention over a sequence spread across
// processes (docs/DISTRIBUTED.md). P ranks (AttentionConfig::communicator)
// each hold an equal contiguous shard of q, k, v and out: rows
// [p * l, (p + 1) * l) of a sequence of n = P * l positions, same batch,
// heads and head_dim. Every rank calls Forward (and Backward) with its shard
// and gets its rows of the single-process function, exactly, causal or not,
// for any segment lengths.
//
//   std::unique_ptr<Communicator> comm = ...;  // CreateMpiCommunicator(...)
//   dilated::AttentionConfig config;
//   config.communicator = comm.get();
//   auto attention = dilated::CreateAttention("ring", config);
//   (*attention)->Forward(q_shard, k_shard, v_shard, out_shard, options);
//
// Every rank must make the same calls with the same configuration, dtype,
// device type and shard shape; each call first checks that they do with one
// small all-gather, so a mismatch, or a rank whose own checks failed, is an
// error on every rank (and a rank that never calls is DeadlineExceeded after
// the communicator's timeout), never a hang. Over several ranks the input
// is fixed-length (cu_seqlens and key_padding_mask are Unimplemented); with
// one rank (no communicator) both names run the best local backend, as
// "auto" does, on every layout.

#ifndef DISTRIBUTED_SEQUENCE_PARALLEL_H_
#define DISTRIBUTED_SEQUENCE_PARALLEL_H_

#include <memory>
#include <string>

#include "attention/attention.h"
#include "distributed/communicator.h"
#include "distributed/shard_runner.h"

namespace dilated {
namespace distributed {

class SequenceParallelAttention final : public Attention {
 public:
  SequenceParallelAttention(std::string name, AttentionConfig config,
                            SequenceParallelAlgorithm algorithm);

  // Returns the communicator calls run over.
  Communicator& communicator() const;

 private:
  absl::Status AgreeOnCall(const absl::Status& checked,
                           const kernels::ForwardParams* params,
                           bool backward) override;
  absl::Status DoForward(const kernels::ForwardParams& params,
                         const Device& device,
                         const ForwardOptions& options) override;
  absl::Status DoBackward(const kernels::BackwardParams& params,
                          const Device& device,
                          const ForwardOptions& options) override;

  absl::StatusOr<ExecutionContext> Context(const Device& device,
                                           const ForwardOptions& options);

  SequenceParallelAlgorithm algorithm_;
  // The communicator of one process, when the config names none.
  std::unique_ptr<Communicator> single_process_;
};

}  // namespace distributed
}  // namespace dilated

#endif  // DISTRIBUTED_SEQUENCE_PARALLEL_H_
