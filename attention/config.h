// File: config.h
//
// The configuration of a dilated attention: the (segment length, dilation
// rate) pairs, the softmax scale and dropout. Validate() checks everything
// that can be checked without tensors; the tensor-dependent rules (every
// segment length divides the sequence length, heads >= groups) are checked at
// Forward time.
//
//   dilated::AttentionConfig config;
//   config.segment_lengths = {2048, 4096, 8192};
//   config.dilation_rates = {1, 2, 4};
//   absl::Status status = config.Validate();

#ifndef ATTENTION_CONFIG_H_
#define ATTENTION_CONFIG_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "attention/block_layout.h"

namespace dilated {
namespace distributed {
class Communicator;  // distributed/communicator.h
}  // namespace distributed

// How the sequence is spread over the ranks of a sequence-parallel
// implementation (docs/DISTRIBUTED.md), P ranks and n = P * l positions.
enum class ShardPlacement {
  // Rank p holds positions [p * l, (p + 1) * l).
  kContiguous,
  // The sequence is cut into 2P chunks of l / 2 positions; rank p holds
  // chunks p and 2P - 1 - p, in that order (its shard's rows [0, l / 2) and
  // [l / 2, l)). Under a causal mask this gives every rank the same work in
  // segments that span ranks; the caller lays the tokens out that way. l
  // must be even.
  kZigzag,
};

struct AttentionConfig {
  // Segment length of every group; each must be positive.
  std::vector<int64_t> segment_lengths = {2048, 4096, 8192};
  // Dilation rate of every group; same length as segment_lengths, positive.
  std::vector<int64_t> dilation_rates = {1, 2, 4};
  // Multiplies q.k before the softmax; 1/sqrt(head_dim) when unset.
  std::optional<double> softmax_scale;
  // Attention-probability dropout in [0, 1), applied by calls with
  // ForwardOptions::training (see there for the semantics and the random
  // stream). "standard", "improved" and "auto" apply it; the other
  // implementations refuse such calls with Unimplemented, never skip it.
  double dropout = 0.0;
  // Takes workspace memory from a pool instead of allocating it directly:
  // on the host, a PoolAllocator owned by the Attention object; on a CUDA
  // device, the device's default allocator (memory/default_allocator.h, a
  // stream-ordered pool). Off by default, as in the reference. A
  // ForwardOptions::workspace_allocator passed to a call takes precedence.
  bool enable_memory_pool = false;
  // The ranks of a sequence-parallel implementation ("ring", "distributed"):
  // each call computes this process's shard of a sequence spread over
  // communicator->size() processes. Not owned; it must outlive the
  // attention. Null means one process. Other implementations ignore it.
  distributed::Communicator* communicator = nullptr;
  // Which positions each rank holds (sequence-parallel implementations).
  ShardPlacement shard_placement = ShardPlacement::kContiguous;
  // The block size and layout or pattern of "block_sparse" (which ignores
  // segment_lengths and dilation_rates); other implementations ignore it.
  BlockSparseConfig block_sparse;

  // Returns OK, or InvalidArgument naming the field and the value at fault.
  absl::Status Validate() const;

  // Returns the number of (segment, rate) groups.
  int num_groups() const { return static_cast<int>(segment_lengths.size()); }
};

}  // namespace dilated

#endif  // ATTENTION_CONFIG_H_
