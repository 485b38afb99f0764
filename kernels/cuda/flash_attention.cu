// Dispatch from run-time (dtype, head_dim) to the compiled instantiations.

#include <cstdint>
#include <cstdlib>
#include <string>

#include "kernels/cuda/flash_attention.h"
#include "kernels/cuda/flash_attention_instances.h"
#include "kernels/cuda/flash_common.cuh"
#include "kernels/cuda/flash_forward_wgmma.cuh"
#include "kernels/cuda/fused_backward.h"

namespace dilated {
namespace kernels {
namespace gpu {
namespace {

// Returns the tile head dimension that serves `head_dim`.
int PaddedHeadDim(int64_t head_dim) {
  if (head_dim <= 32) return 32;
  if (head_dim <= 64) return 64;
  if (head_dim <= 128) return 128;
  return 256;
}

template <DataType kDtype>
cudaError_t ForwardFor(const ForwardParams& params,
                       const FlashProblems* problems, const BlockLists& sparse,
                       cudaStream_t stream) {
  switch (PaddedHeadDim(params.head_dim)) {
    case 32:
      return RunFlashForward<kDtype, 32>(params, problems, sparse, stream);
    case 64:
      return RunFlashForward<kDtype, 64>(params, problems, sparse, stream);
    case 128:
      return RunFlashForward<kDtype, 128>(params, problems, sparse, stream);
    default:
      return RunFlashForward<kDtype, 256>(params, problems, sparse, stream);
  }
}

template <DataType kDtype>
cudaError_t BackwardFor(const BackwardParams& params,
                        const FlashProblems* problems, const BlockLists& sparse,
                        float* delta, cudaStream_t stream) {
  switch (PaddedHeadDim(params.forward.head_dim)) {
    case 32:
      return RunFlashBackward<kDtype, 32>(params, problems, sparse, delta,
                                          stream);
    case 64:
      return RunFlashBackward<kDtype, 64>(params, problems, sparse, delta,
                                          stream);
    case 128:
      return RunFlashBackward<kDtype, 128>(params, problems, sparse, delta,
                                           stream);
    default:
      return RunFlashBackward<kDtype, 256>(params, problems, sparse, delta,
                                           stream);
  }
}

cudaError_t Forward(const ForwardParams& params, const FlashProblems* problems,
                    const BlockLists& sparse, cudaStream_t stream) {
  if (!FlashSupports(params.dtype, params.head_dim)) {
    return cudaErrorInvalidValue;
  }
  return params.dtype == DataType::kFloat16
             ? ForwardFor<DataType::kFloat16>(params, problems, sparse, stream)
             : ForwardFor<DataType::kBFloat16>(params, problems, sparse,
                                               stream);
}

cudaError_t Backward(const BackwardParams& params,
                     const FlashProblems* problems, const BlockLists& sparse,
                     void* workspace, cudaStream_t stream) {
  const ForwardParams& p = params.forward;
  if (!FlashSupports(p.dtype, p.head_dim) || p.lse == nullptr ||
      workspace == nullptr) {
    return cudaErrorInvalidValue;
  }
  float* delta = static_cast<float*>(workspace);
  return p.dtype == DataType::kFloat16
             ? BackwardFor<DataType::kFloat16>(params, problems, sparse, delta,
                                               stream)
             : BackwardFor<DataType::kBFloat16>(params, problems, sparse, delta,
                                                stream);
}

// The params of a block-sparse call as the fused kernels take them: one
// group of every head over the whole sequence (rows = positions), so that
// the tile walks' rows are the layout's positions.
ForwardParams WholeSequenceGroup(ForwardParams p) {
  p.num_groups = 1;
  p.groups[0] = GroupParams{/*head_begin=*/0,
                            p.num_heads,
                            /*segment_length=*/p.seq_len,
                            /*dilation_rate=*/1,
                            /*offset=*/0,
                            /*positions=*/p.seq_len};
  p.output_scale = 1.0f;
  return p;
}

bool BlockSparseCallOk(const ForwardParams& p, const BlockLists& lists) {
  return lists.row_begin != nullptr &&
         lists.block_size % kFlashBlockSparseBlockMultiple == 0 &&
         p.seq_len == lists.block_size * lists.num_blocks &&
         p.sequence.cu_seqlens == nullptr &&
         p.sequence.key_padding_mask == nullptr && !p.dropout.enabled;
}

}  // namespace

bool WgmmaAvailable() {
  static const bool disabled = [] {
    const char* value = std::getenv("DA_DISABLE_WGMMA");
    return value != nullptr && std::string(value) == "1";
  }();
  if (disabled) return false;
  int device = 0;
  int major = 0;
  int minor = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor,
                             device) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor,
                             device) != cudaSuccess) {
    return false;
  }
  return major == 9 && minor == 0;
}

bool FlashSupports(DataType dtype, int64_t head_dim) {
  return (dtype == DataType::kFloat16 || dtype == DataType::kBFloat16) &&
         head_dim >= 8 && head_dim <= kFlashMaxHeadDim && head_dim % 8 == 0;
}

bool FlashTensorsAligned(const ForwardParams& p,
                         const BackwardParams* backward) {
  const auto aligned = [](const TensorParams& t) {
    constexpr int64_t kVector = 8;  // 16-byte vectors of 2-byte elements
    return reinterpret_cast<uintptr_t>(t.data) % 16 == 0 &&
           t.stride_b % kVector == 0 && t.stride_n % kVector == 0 &&
           t.stride_h % kVector == 0;
  };
  const bool forward =
      aligned(p.q) && aligned(p.k) && aligned(p.v) && aligned(p.out);
  if (backward == nullptr) return forward;
  return forward && aligned(backward->grad_out) && aligned(backward->grad_q) &&
         aligned(backward->grad_k) && aligned(backward->grad_v);
}

size_t FlashProblemTableBytes(int64_t count) {
  return ProblemTable::Bytes(count);
}

cudaError_t FlashForward(const ForwardParams& params,
                         const FlashProblems* problems, cudaStream_t stream) {
  return Forward(params, problems, BlockLists{}, stream);
}

size_t FlashBackwardWorkspaceBytes(const BackwardParams& params) {
  const size_t delta_bytes = FlashDeltaBytes(params);
  const int padded = PaddedHeadDim(params.forward.head_dim);
  if ((padded == 64 || padded == 128) && WgmmaAvailable() &&
      FusedBackwardApplies(params)) {
    return FusedBackwardLayoutOf(params, delta_bytes).total_bytes;
  }
  return delta_bytes;
}

cudaError_t FlashBackward(const BackwardParams& params,
                          const FlashProblems* problems, void* workspace,
                          cudaStream_t stream) {
  return Backward(params, problems, BlockLists{}, workspace, stream);
}

cudaError_t FlashBlockSparseForward(const ForwardParams& params,
                                    const BlockLists& lists,
                                    cudaStream_t stream) {
  if (!BlockSparseCallOk(params, lists)) return cudaErrorInvalidValue;
  return Forward(WholeSequenceGroup(params), nullptr, lists, stream);
}

cudaError_t FlashBlockSparseBackward(const BackwardParams& params,
                                     const BlockLists& lists, void* workspace,
                                     cudaStream_t stream) {
  if (!BlockSparseCallOk(params.forward, lists)) return cudaErrorInvalidValue;
  BackwardParams whole = params;
  whole.forward = WholeSequenceGroup(params.forward);
  return Backward(whole, nullptr, lists, workspace, stream);
}

}  // namespace gpu
}  // namespace kernels
}  // namespace dilated
