// File: flash_configs.cuh
//
// The tile shapes of the fused kernels per (dtype, padded head_dim), and the
// generic Run* entry points that the per-instantiation .cu files
// instantiate. Head dimensions that are not a tile size run on the next
// larger one with zero-filled columns.

#ifndef KERNELS_CUDA_FLASH_CONFIGS_CUH_
#define KERNELS_CUDA_FLASH_CONFIGS_CUH_

#include <cuda_runtime.h>

#include <type_traits>

#include "kernels/cuda/flash_attention_instances.h"
#include "kernels/cuda/flash_backward.cuh"
#include "kernels/cuda/flash_backward_wgmma.cuh"
#include "kernels/cuda/flash_forward.cuh"
#include "kernels/cuda/flash_forward_wgmma.cuh"
#include "kernels/dilated_params.h"

namespace dilated {
namespace kernels {
namespace gpu {

// The tile types of the fused kernels for one (dtype, padded head_dim); a
// member is void where that kernel does not exist for the head_dim.
//   Forward           the mma.sync forward kernel.
//   ForwardWgmma      where not void, replaces Forward on devices that run
//                     sm_90a code (WgmmaAvailable()).
//   KeyValue          the mma.sync dK/dV kernel; dV alone when KeyOnly is not
//                     void.
//   KeyOnly           where not void, a second pass that computes dK.
//   Query             the mma.sync dQ kernel.
//   QueryWgmma,       where KeyValueWgmma is not void, the sm_90a backward:
//   QueryWgmmaCausal, dQ (QueryWgmmaCausal under the causal mask) runs first
//   KeyValueWgmma     and writes the delta rows that dK/dV then reads.
// Why these shapes: docs/PERFORMANCE_CUDA.md, "FlashConfig tile shapes".
template <DataType kDtype, int kHeadDim>
struct FlashConfig;

template <DataType kDtype>
struct FlashConfig<kDtype, 32> {
  using ForwardWgmma = void;
  using KeyValueWgmma = void;
  using QueryWgmma = void;
  using QueryWgmmaCausal = void;
  using Forward = ForwardTile<kDtype, 32, 128, 64, 4, true, 2, 2>;
  using KeyValue =
      KeyValueTile<kDtype, 32, 64, 4, true, KeyValuePart::kBoth, 2>;
  using KeyOnly = void;
  using Query = QueryTile<kDtype, 32, 64, 4, true, 2>;
};

template <DataType kDtype>
struct FlashConfig<kDtype, 64> {
  using ForwardWgmma = WgmmaForwardTile<kDtype, 1, 128, 3>;
  using KeyValueWgmma = WgmmaKeyValueTile<kDtype, 128, 1>;
  using QueryWgmma = WgmmaQueryTile<kDtype, 128, 2>;
  using QueryWgmmaCausal = WgmmaQueryTile<kDtype, 64, 3>;
  using Forward = ForwardTile<kDtype, 64, 128, 64, 4, true, 2, 2>;
  using KeyValue =
      KeyValueTile<kDtype, 64, 64, 4, true, KeyValuePart::kBoth, 2>;
  using KeyOnly = void;
  using Query = QueryTile<kDtype, 64, 64, 4, true, 2>;
};

template <DataType kDtype>
struct FlashConfig<kDtype, 128> {
  using ForwardWgmma = void;
  using KeyValueWgmma = void;
  using QueryWgmma = void;
  using QueryWgmmaCausal = void;
  using Forward = ForwardTile<kDtype, 128, 128, 32, 4, false, 2, 2>;
  using KeyValue =
      KeyValueTile<kDtype, 128, 32, 4, false, KeyValuePart::kBoth, 2>;
  using KeyOnly = void;
  using Query = QueryTile<kDtype, 128, 64, 8, false, 1>;
};

template <DataType kDtype>
struct FlashConfig<kDtype, 256> {
  using ForwardWgmma = void;
  using KeyValueWgmma = void;
  using QueryWgmma = void;
  using QueryWgmmaCausal = void;
  using Forward = ForwardTile<kDtype, 256, 64, 32, 4, false, 1>;
  using KeyValue =
      KeyValueTile<kDtype, 256, 32, 4, false, KeyValuePart::kValueOnly, 1>;
  using KeyOnly =
      KeyValueTile<kDtype, 256, 32, 4, false, KeyValuePart::kKeyOnly, 1>;
  using Query = QueryTile<kDtype, 256, 32, 4, false, 1>;
};

template <DataType kDtype, int kHeadDim>
cudaError_t RunFlashForward(const ForwardParams& params, cudaStream_t stream) {
  using Config = FlashConfig<kDtype, kHeadDim>;
  if constexpr (!std::is_void_v<typename Config::ForwardWgmma>) {
    if (WgmmaAvailable()) {
      return LaunchFlashForwardWgmma<typename Config::ForwardWgmma>(params,
                                                                    stream);
    }
  }
  return LaunchFlashForward<typename Config::Forward>(params, stream);
}

template <DataType kDtype, int kHeadDim>
cudaError_t RunFlashBackward(const BackwardParams& params, float* delta,
                             cudaStream_t stream) {
  using Config = FlashConfig<kDtype, kHeadDim>;
  FlashBackwardArgs args;
  args.params = params;
  args.delta = delta;
  if constexpr (!std::is_void_v<typename Config::KeyValueWgmma>) {
    if (WgmmaAvailable()) {
      // The query kernel writes the delta rows the key/value kernel reads.
      cudaError_t error =
          params.forward.is_causal
              ? LaunchFlashQueryWgmma<typename Config::QueryWgmmaCausal>(args,
                                                                         stream)
              : LaunchFlashQueryWgmma<typename Config::QueryWgmma>(args,
                                                                   stream);
      if (error != cudaSuccess) return error;
      return LaunchFlashKeyValueWgmma<typename Config::KeyValueWgmma>(args,
                                                                      stream);
    }
  }
  cudaError_t error = LaunchFlashDelta<kDtype>(params, delta, stream);
  if (error != cudaSuccess) return error;
  error = LaunchFlashKeyValue<typename Config::KeyValue>(args, stream);
  if (error != cudaSuccess) return error;
  if constexpr (!std::is_void_v<typename Config::KeyOnly>) {
    error = LaunchFlashKeyValue<typename Config::KeyOnly>(args, stream);
    if (error != cudaSuccess) return error;
  }
  return LaunchFlashQuery<typename Config::Query>(args, stream);
}

}  // namespace gpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CUDA_FLASH_CONFIGS_CUH_
