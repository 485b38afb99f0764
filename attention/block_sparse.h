// File: block_sparse.h
//
// "block_sparse" (docs/BLOCK_SPARSE.md): attention over the active blocks of
// a block layout, ONE softmax per row over all keys of the row's active
// blocks (at or before the row when causal); rows with no key give 0. No
// 1/G factor; segment_lengths and dilation_rates are ignored (config()
// reports one group). The layout comes from config.block_sparse (a pattern
// or a custom layout); its active-block lists are built once per (sequence
// length, heads) and cached in the object.
//
//   dilated::AttentionConfig config;
//   config.block_sparse.pattern = dilated::BlockPattern::kLocalWindow;
//   config.block_sparse.block_size = 128;
//   config.block_sparse.window = 512;
//   auto attention = dilated::CreateAttention("block_sparse", config);
//
// Tensors: [batch, seq, heads, head_dim] with seq a multiple of block_size
// (InvalidArgument otherwise), float32, float16 or bfloat16, key_padding_mask
// allowed. Packed input ([total, heads, head_dim] with cu_seqlens) runs on
// CPU tensors: every sequence gets the layout of its own length from its own
// position 0, and its length must be a multiple of block_size
// (block_sparse_packed.h; InvalidArgument naming the sequence otherwise);
// on CUDA tensors it is Unimplemented. CPU tensors run
// kernels/cpu/block_sparse_attention.h; CUDA tensors run
// kernels/cuda/block_sparse_attention.h in builds with --config=cuda
// (block_sparse_device.h; FailedPrecondition otherwise).

#ifndef ATTENTION_BLOCK_SPARSE_H_
#define ATTENTION_BLOCK_SPARSE_H_

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "attention/attention.h"
#include "attention/backend_registry.h"
#include "attention/block_lists.h"
#include "attention/block_sparse_device.h"
#include "attention/block_sparse_packed.h"

namespace dilated {

// The attention probabilities of the active blocks of one call, as the
// Python library's return_attention_weights gives them.
struct BlockProbabilities {
  int64_t block_size = 0;
  int64_t num_blocks = 0;
  // Every (query block, key block) active for some head, ascending.
  std::vector<std::pair<int64_t, int64_t>> blocks;
  // [blocks.size(), batch, heads, block_size, block_size] float32: P[query,
  // key] of the block pair; 0 for a head the pair is not active on, keys a
  // causal mask or the key padding leaves out, and rows with no key.
  std::vector<float> values;
};

class BlockSparseAttention : public Attention {
 public:
  // REQUIRES: config.block_sparse.Validate() is OK (the factory checks it).
  explicit BlockSparseAttention(const AttentionConfig& config);

  // Returns the probabilities of the active blocks for CPU tensors q, k
  // ([batch, seq, heads, head_dim]) and the lse Forward wrote for them with
  // the same options (debugging aid; costs batch x heads x active blocks x
  // block_size^2 floats).
  absl::StatusOr<BlockProbabilities> Probabilities(
      const TensorView& q, const TensorView& k, const TensorView& lse,
      const ForwardOptions& options = {});

 private:
  absl::Status DoForward(const kernels::ForwardParams& params,
                         const Device& device,
                         const ForwardOptions& options) override;
  absl::Status DoBackward(const kernels::BackwardParams& params,
                          const Device& device,
                          const ForwardOptions& options) override;

  // Returns the registered kernels of `device`: null for the CPU (the CPU
  // kernels are called directly), FailedPrecondition where this build has
  // none.
  static absl::StatusOr<const BlockSparseDeviceKernels*> KernelsFor(
      const Device& device);

  // Returns the lists of every sequence of a packed call, or the first
  // error with the sequence's index.
  template <typename Params>
  absl::StatusOr<std::vector<std::shared_ptr<const BlockListStorage>>>
  ListsForSequences(const std::vector<PackedSequence<Params>>& sequences);

  // Calls run(params, lists) for a fixed-length call, or once per sequence
  // of a packed one (cut by `split`, SplitPackedForward or
  // SplitPackedBackward, from cu_seqlens that `kernels` copies to the host
  // when it is not null).
  template <typename Params, typename Split, typename Run>
  absl::Status RunCall(const Params& params,
                       const BlockSparseDeviceKernels* kernels,
                       const ExecutionContext& context, Split split, Run run);

  BlockListCache lists_;
};

}  // namespace dilated

#endif  // ATTENTION_BLOCK_SPARSE_H_
