// Dispatch from run-time (dtype, head_dim) to the compiled instantiations.

#include <cstdlib>
#include <string>

#include "kernels/cuda/flash_attention.h"
#include "kernels/cuda/flash_attention_instances.h"
#include "kernels/cuda/flash_common.cuh"
#include "kernels/cuda/flash_forward_wgmma.cuh"

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
                       const FlashProblems* problems, cudaStream_t stream) {
  switch (PaddedHeadDim(params.head_dim)) {
    case 32:
      return RunFlashForward<kDtype, 32>(params, problems, stream);
    case 64:
      return RunFlashForward<kDtype, 64>(params, problems, stream);
    case 128:
      return RunFlashForward<kDtype, 128>(params, problems, stream);
    default:
      return RunFlashForward<kDtype, 256>(params, problems, stream);
  }
}

template <DataType kDtype>
cudaError_t BackwardFor(const BackwardParams& params,
                        const FlashProblems* problems, float* delta,
                        cudaStream_t stream) {
  switch (PaddedHeadDim(params.forward.head_dim)) {
    case 32:
      return RunFlashBackward<kDtype, 32>(params, problems, delta, stream);
    case 64:
      return RunFlashBackward<kDtype, 64>(params, problems, delta, stream);
    case 128:
      return RunFlashBackward<kDtype, 128>(params, problems, delta, stream);
    default:
      return RunFlashBackward<kDtype, 256>(params, problems, delta, stream);
  }
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

size_t FlashProblemTableBytes(int64_t count) {
  return ProblemTable::Bytes(count);
}

cudaError_t FlashForward(const ForwardParams& params,
                         const FlashProblems* problems, cudaStream_t stream) {
  if (!FlashSupports(params.dtype, params.head_dim)) {
    return cudaErrorInvalidValue;
  }
  return params.dtype == DataType::kFloat16
             ? ForwardFor<DataType::kFloat16>(params, problems, stream)
             : ForwardFor<DataType::kBFloat16>(params, problems, stream);
}

size_t FlashBackwardWorkspaceBytes(const BackwardParams& params) {
  const ForwardParams& p = params.forward;
  return static_cast<size_t>(StorageBatch(p) * p.num_heads * p.seq_len) *
         sizeof(float);
}

cudaError_t FlashBackward(const BackwardParams& params,
                          const FlashProblems* problems, void* workspace,
                          cudaStream_t stream) {
  const ForwardParams& p = params.forward;
  if (!FlashSupports(p.dtype, p.head_dim) || p.lse == nullptr ||
      workspace == nullptr) {
    return cudaErrorInvalidValue;
  }
  float* delta = static_cast<float*>(workspace);
  return p.dtype == DataType::kFloat16
             ? BackwardFor<DataType::kFloat16>(params, problems, delta, stream)
             : BackwardFor<DataType::kBFloat16>(params, problems, delta,
                                                stream);
}

}  // namespace gpu
}  // namespace kernels
}  // namespace dilated
