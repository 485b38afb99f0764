// File: fused_backward.h
//
// When FlashBackward runs the one-kernel backward (the FusedQuery mode of
// flash_backward_wgmma.cuh, ordered: dQ summed in a fixed order) instead of
// the dK/dV and dQ kernels, and the workspace it then takes. Opt-in, since it
// measured slower than those kernels (docs/PERFORMANCE_CUDA.md):
// DA_FUSED_BACKWARD=1 in the environment.

#ifndef KERNELS_CUDA_FUSED_BACKWARD_H_
#define KERNELS_CUDA_FUSED_BACKWARD_H_

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "kernels/dilated_params.h"

namespace dilated {
namespace kernels {
namespace gpu {

// The rows of each problem a fused block walks in its fixed order: every
// problem's row count must be a multiple of them.
inline constexpr int64_t kFusedBackwardRows = 128;

// Whether DA_FUSED_BACKWARD=1 is set (read once).
inline bool FusedBackwardRequested() {
  static const bool requested = [] {
    const char* value = std::getenv("DA_FUSED_BACKWARD");
    return value != nullptr && std::strcmp(value, "1") == 0;
  }();
  return requested;
}

// Whether a dense call of the closed form (no problem list, no block
// layout) may run the fused backward, given that its head_dim has one and
// the device runs sm_90a code: requested, fixed-length tensors with the
// keys' geometry equal to the queries' (square problems for the ordered
// walk), no dropout, grad_q contiguous (its float32 sums share its
// element offsets) and every group's selected rows per segment a multiple
// of kFusedBackwardRows.
inline bool FusedBackwardApplies(const BackwardParams& params) {
  const ForwardParams& p = params.forward;
  if (!FusedBackwardRequested() || IsPacked(p) || p.dropout.enabled ||
      p.key_seq_len != p.seq_len || p.key_position_offset != 0 ||
      p.sequence.key_padding_mask != nullptr) {
    return false;
  }
  const TensorParams& g = params.grad_q;
  if (g.stride_h != p.head_dim || g.stride_n != p.num_heads * p.head_dim ||
      g.stride_b != p.seq_len * g.stride_n) {
    return false;
  }
  for (int i = 0; i < p.num_groups; ++i) {
    const GroupParams& group = p.groups[i];
    if (group.segment_length <= 0 || group.positions <= 0 ||
        p.seq_len % group.segment_length != 0 ||
        group.positions % kFusedBackwardRows != 0) {
      return false;
    }
  }
  return true;
}

// The bytes of the delta rows: one float per (storage batch entry, head,
// row), laid out like the lse.
inline size_t FlashDeltaBytes(const BackwardParams& params) {
  const ForwardParams& p = params.forward;
  return static_cast<size_t>(StorageBatch(p) * p.num_heads * p.seq_len) *
         sizeof(float);
}

// Where the fused backward's buffers lie in the backward workspace: the
// delta rows first (as for the two kernels), then the float32 dQ sums
// (grad_q's elements) and the turn counters (one per grad_q row), each at
// a 256-byte boundary.
struct FusedBackwardLayout {
  size_t sums_offset;
  size_t turns_offset;
  size_t total_bytes;
};

inline FusedBackwardLayout FusedBackwardLayoutOf(const BackwardParams& params,
                                                 size_t delta_bytes) {
  const ForwardParams& p = params.forward;
  const auto round_up = [](size_t bytes) { return (bytes + 255) / 256 * 256; };
  const size_t rows = static_cast<size_t>(p.batch * p.seq_len * p.num_heads);
  FusedBackwardLayout layout;
  layout.sums_offset = round_up(delta_bytes);
  layout.turns_offset =
      round_up(layout.sums_offset + rows * static_cast<size_t>(p.head_dim) * 4);
  layout.total_bytes = layout.turns_offset + rows * sizeof(int);
  return layout;
}

}  // namespace gpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CUDA_FUSED_BACKWARD_H_
