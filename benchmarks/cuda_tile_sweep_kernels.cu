// Tile-shape variants of the fused kernels (float16) for cuda_tile_sweep.

#include <cuda_fp16.h>

#include <cstring>

#include "benchmarks/cuda_tile_sweep_kernels.h"
#include "kernels/cuda/flash_backward.cuh"
#include "kernels/cuda/flash_backward_wgmma.cuh"
#include "kernels/cuda/flash_forward.cuh"
#include "kernels/cuda/flash_forward_wgmma.cuh"
#include "kernels/cuda/flash_forward_ws.cuh"

namespace dilated {
namespace sweep {
namespace {

using kernels::BackwardParams;
using kernels::BlockLists;
using kernels::DataType;
using kernels::ForwardParams;
using namespace kernels::gpu;  // NOLINT: tile templates

constexpr DataType kH = DataType::kFloat16;

template <class Tile>
cudaError_t Forward(const ForwardParams& p, cudaStream_t stream) {
  return LaunchFlashForward<Tile>(p, stream);
}

// The wgmma kernels exist only as sm_90a code: elsewhere the variant reports
// an unsupported device instead of launching.
template <class Tile>
cudaError_t ForwardWgmma(const ForwardParams& p, cudaStream_t stream) {
  if (!WgmmaAvailable()) return cudaErrorNoKernelImageForDevice;
  return LaunchFlashForwardWgmma<Tile>(p, stream);
}

template <class Tile>
cudaError_t ForwardWs(const ForwardParams& p, cudaStream_t stream) {
  if (!WgmmaAvailable()) return cudaErrorNoKernelImageForDevice;
  return LaunchFlashForwardWs<Tile>(p, stream);
}

template <class Tile>
cudaError_t SparseForward(const ForwardParams& p, const BlockLists& lists,
                          cudaStream_t stream) {
  if (!WgmmaAvailable()) return cudaErrorNoKernelImageForDevice;
  if constexpr (IsWsForwardTile<Tile>::value) {
    return LaunchFlashForwardWs<Tile>(p, stream, ProblemIndex{}, lists);
  } else {
    return LaunchFlashForwardWgmma<Tile>(p, stream, ProblemIndex{}, lists);
  }
}

// The same kernel with its producer on cp.async where TMA would apply.
template <class Tile>
cudaError_t ForwardWsCpAsync(const ForwardParams& p, cudaStream_t stream) {
  if (!WgmmaAvailable()) return cudaErrorNoKernelImageForDevice;
  return LaunchFlashForwardWsCopyingBy<Tile>(false, p, stream, ProblemIndex{},
                                             BlockLists{});
}

template <class Tile>
cudaError_t KeyValue(const BackwardParams& p, float* delta,
                     cudaStream_t stream) {
  const FlashBackwardArgs args = MakeFlashBackwardArgs(p, delta);
  return LaunchFlashKeyValue<Tile>(args, stream);
}

template <class Tile>
cudaError_t KeyValueWgmma(const BackwardParams& p, float* delta,
                          cudaStream_t stream) {
  if (!WgmmaAvailable()) return cudaErrorNoKernelImageForDevice;
  const FlashBackwardArgs args = MakeFlashBackwardArgs(p, delta);
  return LaunchFlashKeyValueWgmma<Tile>(args, stream);
}

template <class Tile>
cudaError_t QueryWgmma(const BackwardParams& p, float* delta,
                       cudaStream_t stream) {
  if (!WgmmaAvailable()) return cudaErrorNoKernelImageForDevice;
  const FlashBackwardArgs args = MakeFlashBackwardArgs(p, delta);
  return LaunchFlashQueryWgmma<Tile>(args, stream);
}

// The two wgmma backward kernels with their tiles on cp.async where TMA
// would apply.
template <class Tile>
cudaError_t KeyValueWgmmaCpAsync(const BackwardParams& p, float* delta,
                                 cudaStream_t stream) {
  if (!WgmmaAvailable()) return cudaErrorNoKernelImageForDevice;
  const FlashBackwardArgs args = MakeFlashBackwardArgs(p, delta);
  return LaunchFlashKeyValueWgmmaCopyingBy<Tile>(false, args, stream,
                                                 ProblemIndex{});
}

template <class Tile>
cudaError_t QueryWgmmaCpAsync(const BackwardParams& p, float* delta,
                              cudaStream_t stream) {
  if (!WgmmaAvailable()) return cudaErrorNoKernelImageForDevice;
  const FlashBackwardArgs args = MakeFlashBackwardArgs(p, delta);
  return LaunchFlashQueryWgmmaCopyingBy<Tile>(false, args, stream,
                                              ProblemIndex{});
}

// A device buffer kept across calls, grown to at least `bytes`.
cudaError_t Scratch(void** buffer, size_t* capacity, size_t bytes) {
  if (bytes <= *capacity) return cudaSuccess;
  if (*buffer != nullptr) cudaFree(*buffer);
  *capacity = 0;
  const cudaError_t error = cudaMalloc(buffer, bytes);
  if (error == cudaSuccess) *capacity = bytes;
  return error;
}

// The fused backward as a whole (RunFusedBackward: the float32 dQ sums and
// turn counters zeroed, the kernel, the sums rounded into grad_q), its
// buffers kept across calls.
template <class Tile>
cudaError_t FusedBackward(const BackwardParams& p, float* delta,
                          cudaStream_t stream) {
  if (!WgmmaAvailable()) return cudaErrorNoKernelImageForDevice;
  const ForwardParams& f = p.forward;
  const int64_t rows = f.batch * f.seq_len * f.num_heads;
  const int64_t n = rows * f.head_dim;
  static void* sums = nullptr;
  static size_t sums_capacity = 0;
  static void* turns = nullptr;
  static size_t turns_capacity = 0;
  cudaError_t error = Scratch(&sums, &sums_capacity, n * sizeof(float));
  if (error == cudaSuccess) {
    error = Scratch(&turns, &turns_capacity, rows * sizeof(int));
  }
  if (error != cudaSuccess) return error;
  return RunFusedBackward<Tile>(MakeFlashBackwardArgs(p, delta),
                                static_cast<float*>(sums),
                                static_cast<int*>(turns), stream);
}

template <class Tile>
cudaError_t Query(const BackwardParams& p, float* delta, cudaStream_t stream) {
  const FlashBackwardArgs args = MakeFlashBackwardArgs(p, delta);
  return LaunchFlashQuery<Tile>(args, stream);
}

// Thread blocks of `kernel` (shape Tile) that one SM holds at once, from the
// occupancy calculator (launch bounds, registers and shared memory); 0 where
// the device cannot run it.
template <class Tile, class Args>
int BlocksPerSm(void (*kernel)(Args)) {
  if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                           static_cast<int>(Tile::kSmemBytes)) != cudaSuccess) {
    return 0;
  }
  int blocks = 0;
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(
          &blocks, kernel, Tile::kThreads, Tile::kSmemBytes) != cudaSuccess) {
    return 0;
  }
  return blocks;
}

template <class Tile>
int ForwardBlocks() {
  return BlocksPerSm<Tile>(FlashForwardKernel<Tile, false>);
}

template <class Tile>
int ForwardWgmmaBlocks() {
  return WgmmaAvailable() ? BlocksPerSm<Tile>(FlashForwardWgmmaKernel<Tile>)
                          : 0;
}

template <class Tile>
int ForwardWsBlocks() {
  return WgmmaAvailable() ? BlocksPerSm<Tile>(FlashForwardWsKernel<Tile>) : 0;
}

template <class Tile>
int KeyValueBlocks() {
  return BlocksPerSm<Tile>(FlashKeyValueKernel<Tile, false>);
}

template <class Tile>
int KeyValueWgmmaBlocks() {
  return WgmmaAvailable() ? BlocksPerSm<Tile>(FlashKeyValueWgmmaKernel<Tile>)
                          : 0;
}

template <class Tile>
int QueryBlocks() {
  return BlocksPerSm<Tile>(FlashQueryKernel<Tile, false>);
}

template <class Tile>
int QueryWgmmaBlocks() {
  return WgmmaAvailable() ? BlocksPerSm<Tile>(FlashQueryWgmmaKernel<Tile>) : 0;
}

__global__ void MaxAbsDifferenceKernel(const __half* a, const __half* b,
                                       int64_t n, unsigned int* result) {
  float largest = 0.0f;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
       i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float d = fabsf(__half2float(a[i]) - __half2float(b[i]));
    largest = fmaxf(largest, d != d ? __int_as_float(0x7f800000) : d);
  }
  // Non-negative floats order as their bit patterns do.
  atomicMax(result, __float_as_uint(largest));
}

}  // namespace

float MaxAbsDifference(const void* a, const void* b, int64_t n) {
  unsigned int* result = nullptr;
  if (cudaMalloc(&result, sizeof(unsigned int)) != cudaSuccess) return -1.0f;
  unsigned int bits = 0;
  cudaMemset(result, 0, sizeof(bits));
  MaxAbsDifferenceKernel<<<1024, 256>>>(
      static_cast<const __half*>(a), static_cast<const __half*>(b), n, result);
  const cudaError_t error =
      cudaMemcpy(&bits, result, sizeof(bits), cudaMemcpyDeviceToHost);
  cudaFree(result);
  if (error != cudaSuccess) return -1.0f;
  float largest;
  std::memcpy(&largest, &bits, sizeof(largest));
  return largest;
}

// Name: head_dim / rows per block x key rows per tile / warps / queries in
// registers / minimum blocks per SM.
const ForwardVariant kForwardVariants[] = {
    {"fwd d64 128x64 w4 qreg", 64,
     &Forward<ForwardTile<kH, 64, 128, 64, 4, true, 2>>,
     &ForwardBlocks<ForwardTile<kH, 64, 128, 64, 4, true, 2>>},
    {"fwd d64 256x64 w8 qreg", 64,
     &Forward<ForwardTile<kH, 64, 256, 64, 8, true, 1>>,
     &ForwardBlocks<ForwardTile<kH, 64, 256, 64, 8, true, 1>>},
    {"fwd d64 128x32 w4 qreg", 64,
     &Forward<ForwardTile<kH, 64, 128, 32, 4, true, 2>>,
     &ForwardBlocks<ForwardTile<kH, 64, 128, 32, 4, true, 2>>},
    {"fwd d64 128x64 w4 qreg 2stage", 64,
     &Forward<ForwardTile<kH, 64, 128, 64, 4, true, 2, 2>>,
     &ForwardBlocks<ForwardTile<kH, 64, 128, 64, 4, true, 2, 2>>},
    {"fwd d64 128x32 w4 qreg 2stage", 64,
     &Forward<ForwardTile<kH, 64, 128, 32, 4, true, 2, 2>>,
     &ForwardBlocks<ForwardTile<kH, 64, 128, 32, 4, true, 2, 2>>},
    {"fwd d64 wgmma 64x128 1wg min2", 64,
     &ForwardWgmma<WgmmaForwardTile<kH, 1, 128, 2>>,
     &ForwardWgmmaBlocks<WgmmaForwardTile<kH, 1, 128, 2>>},
    {"fwd d64 wgmma 64x128 1wg min3", 64,
     &ForwardWgmma<WgmmaForwardTile<kH, 1, 128, 3>>,
     &ForwardWgmmaBlocks<WgmmaForwardTile<kH, 1, 128, 3>>},
    {"fwd d64 wgmma 64x128 1wg min3 fmaexp4", 64,
     &ForwardWgmma<WgmmaForwardTile<kH, 1, 128, 3, 64, false, 4>>,
     &ForwardWgmmaBlocks<WgmmaForwardTile<kH, 1, 128, 3, 64, false, 4>>},
    {"fwd d64 wgmma 192x128 3wg", 64,
     &ForwardWgmma<WgmmaForwardTile<kH, 3, 128, 1>>,
     &ForwardWgmmaBlocks<WgmmaForwardTile<kH, 3, 128, 1>>},
    {"fwd d64 wgmma 64x64 1wg min3", 64,
     &ForwardWgmma<WgmmaForwardTile<kH, 1, 64, 3>>,
     &ForwardWgmmaBlocks<WgmmaForwardTile<kH, 1, 64, 3>>},
    {"fwd d64 wgmma 64x64 1wg min4", 64,
     &ForwardWgmma<WgmmaForwardTile<kH, 1, 64, 4>>,
     &ForwardWgmmaBlocks<WgmmaForwardTile<kH, 1, 64, 4>>},
    {"fwd d64 wgmma 128x64 2wg min2", 64,
     &ForwardWgmma<WgmmaForwardTile<kH, 2, 64, 2>>,
     &ForwardWgmmaBlocks<WgmmaForwardTile<kH, 2, 64, 2>>},
    {"fwd d64 wgmma 192x64 3wg", 64,
     &ForwardWgmma<WgmmaForwardTile<kH, 3, 64, 1>>,
     &ForwardWgmmaBlocks<WgmmaForwardTile<kH, 3, 64, 1>>},
    {"fwd d64 wgmma 128x128 2wg min1", 64,
     &ForwardWgmma<WgmmaForwardTile<kH, 2, 128, 1>>,
     &ForwardWgmmaBlocks<WgmmaForwardTile<kH, 2, 128, 1>>},
    {"fwd d64 wgmma 64x128 1wg min2 qreg", 64,
     &ForwardWgmma<WgmmaForwardTile<kH, 1, 128, 2, 64, true>>,
     &ForwardWgmmaBlocks<WgmmaForwardTile<kH, 1, 128, 2, 64, true>>},
    {"fwd d128 wgmma 64x64 1wg min2", 128,
     &ForwardWgmma<WgmmaForwardTile<kH, 1, 64, 2, 128>>,
     &ForwardWgmmaBlocks<WgmmaForwardTile<kH, 1, 64, 2, 128>>},
    {"fwd d128 wgmma 128x64 2wg min1", 128,
     &ForwardWgmma<WgmmaForwardTile<kH, 2, 64, 1, 128>>,
     &ForwardWgmmaBlocks<WgmmaForwardTile<kH, 2, 64, 1, 128>>},
    {"fwd d128 wgmma 64x128 1wg min1", 128,
     &ForwardWgmma<WgmmaForwardTile<kH, 1, 128, 1, 128>>,
     &ForwardWgmmaBlocks<WgmmaForwardTile<kH, 1, 128, 1, 128>>},
    {"fwd d128 wgmma 128x128 2wg min1", 128,
     &ForwardWgmma<WgmmaForwardTile<kH, 2, 128, 1, 128>>,
     &ForwardWgmmaBlocks<WgmmaForwardTile<kH, 2, 128, 1, 128>>},
    {"fwd d128 wgmma 64x64 1wg min2 qreg", 128,
     &ForwardWgmma<WgmmaForwardTile<kH, 1, 64, 2, 128, true>>,
     &ForwardWgmmaBlocks<WgmmaForwardTile<kH, 1, 64, 2, 128, true>>},
    {"fwd d128 wgmma 128x128 2wg min1 qreg", 128,
     &ForwardWgmma<WgmmaForwardTile<kH, 2, 128, 1, 128, true>>,
     &ForwardWgmmaBlocks<WgmmaForwardTile<kH, 2, 128, 1, 128, true>>},
    {"fwd d128 ws 128x128 s2 qreg pp", 128,
     &ForwardWs<WsForwardTile<kH, 2, 128, 2, 128, true, true>>,
     &ForwardWsBlocks<WsForwardTile<kH, 2, 128, 2, 128, true, true>>},
    {"fwd d128 ws 128x128 s2 qreg pp fmaexp4", 128,
     &ForwardWs<WsForwardTile<kH, 2, 128, 2, 128, true, true, 4>>,
     &ForwardWsBlocks<WsForwardTile<kH, 2, 128, 2, 128, true, true, 4>>},
    {"fwd d128 ws 128x128 s2 qreg pp cpasync", 128,
     &ForwardWsCpAsync<WsForwardTile<kH, 2, 128, 2, 128, true, true>>,
     &ForwardWsBlocks<WsForwardTile<kH, 2, 128, 2, 128, true, true>>},
    {"fwd d128 ws 128x128 s3 qreg pp", 128,
     &ForwardWs<WsForwardTile<kH, 2, 128, 3, 128, true, true>>,
     &ForwardWsBlocks<WsForwardTile<kH, 2, 128, 3, 128, true, true>>},
    {"fwd d128 ws 128x128 s2 qreg", 128,
     &ForwardWs<WsForwardTile<kH, 2, 128, 2, 128, true, false>>,
     &ForwardWsBlocks<WsForwardTile<kH, 2, 128, 2, 128, true, false>>},
    {"fwd d128 ws 128x128 s2 pp", 128,
     &ForwardWs<WsForwardTile<kH, 2, 128, 2, 128, false, true>>,
     &ForwardWsBlocks<WsForwardTile<kH, 2, 128, 2, 128, false, true>>},
    {"fwd d128 ws 128x64 s3 qreg pp", 128,
     &ForwardWs<WsForwardTile<kH, 2, 64, 3, 128, true, true>>,
     &ForwardWsBlocks<WsForwardTile<kH, 2, 64, 3, 128, true, true>>},
    {"fwd d64 ws 128x128 s2 qreg pp", 64,
     &ForwardWs<WsForwardTile<kH, 2, 128, 2, 64, true, true>>,
     &ForwardWsBlocks<WsForwardTile<kH, 2, 128, 2, 64, true, true>>},
    {"fwd d64 ws 128x128 s2 qreg pp cpasync", 64,
     &ForwardWsCpAsync<WsForwardTile<kH, 2, 128, 2, 64, true, true>>,
     &ForwardWsBlocks<WsForwardTile<kH, 2, 128, 2, 64, true, true>>},
    {"fwd d64 ws 128x128 s3 qreg pp", 64,
     &ForwardWs<WsForwardTile<kH, 2, 128, 3, 64, true, true>>,
     &ForwardWsBlocks<WsForwardTile<kH, 2, 128, 3, 64, true, true>>},
    {"fwd d64 ws 128x128 s2 qreg", 64,
     &ForwardWs<WsForwardTile<kH, 2, 128, 2, 64, true, false>>,
     &ForwardWsBlocks<WsForwardTile<kH, 2, 128, 2, 64, true, false>>},
    {"fwd d64 ws 192x128 s2 pp", 64,
     &ForwardWs<WsForwardTile<kH, 3, 128, 2, 64, false, true>>,
     &ForwardWsBlocks<WsForwardTile<kH, 3, 128, 2, 64, false, true>>},
    {"fwd d64 ws 192x128 s3 pp", 64,
     &ForwardWs<WsForwardTile<kH, 3, 128, 3, 64, false, true>>,
     &ForwardWsBlocks<WsForwardTile<kH, 3, 128, 3, 64, false, true>>},
    {"fwd d64 ws 192x128 s2 pp cpasync", 64,
     &ForwardWsCpAsync<WsForwardTile<kH, 3, 128, 2, 64, false, true>>,
     &ForwardWsBlocks<WsForwardTile<kH, 3, 128, 2, 64, false, true>>},
    {"fwd d64 ws 192x128 s2 pp fmaexp8", 64,
     &ForwardWs<WsForwardTile<kH, 3, 128, 2, 64, false, true, 8>>,
     &ForwardWsBlocks<WsForwardTile<kH, 3, 128, 2, 64, false, true, 8>>},
    {"fwd d64 ws 192x128 s2 pp fmaexp4", 64,
     &ForwardWs<WsForwardTile<kH, 3, 128, 2, 64, false, true, 4>>,
     &ForwardWsBlocks<WsForwardTile<kH, 3, 128, 2, 64, false, true, 4>>},
    {"fwd d64 ws 192x128 s2 pp fmaexp3", 64,
     &ForwardWs<WsForwardTile<kH, 3, 128, 2, 64, false, true, 3>>,
     &ForwardWsBlocks<WsForwardTile<kH, 3, 128, 2, 64, false, true, 3>>},
    {"fwd d64 ws 192x128 s2 pp fmaexp2", 64,
     &ForwardWs<WsForwardTile<kH, 3, 128, 2, 64, false, true, 2>>,
     &ForwardWsBlocks<WsForwardTile<kH, 3, 128, 2, 64, false, true, 2>>},
    {"fwd d64 ws 192x64 s3 qreg pp", 64,
     &ForwardWs<WsForwardTile<kH, 3, 64, 3, 64, true, true>>,
     &ForwardWsBlocks<WsForwardTile<kH, 3, 64, 3, 64, true, true>>},
    {"fwd d64 ws 192x64 s3 qreg", 64,
     &ForwardWs<WsForwardTile<kH, 3, 64, 3, 64, true, false>>,
     &ForwardWsBlocks<WsForwardTile<kH, 3, 64, 3, 64, true, false>>},
    {"fwd d256 64x32 w4", 256,
     &Forward<ForwardTile<kH, 256, 64, 32, 4, false, 1>>,
     &ForwardBlocks<ForwardTile<kH, 256, 64, 32, 4, false, 1>>},
    {"fwd d256 ws 128x64 s2 pp", 256,
     &ForwardWs<WsForwardTile<kH, 2, 64, 2, 256, false, true>>,
     &ForwardWsBlocks<WsForwardTile<kH, 2, 64, 2, 256, false, true>>},
    {"fwd d256 ws 128x64 s2", 256,
     &ForwardWs<WsForwardTile<kH, 2, 64, 2, 256, false, false>>,
     &ForwardWsBlocks<WsForwardTile<kH, 2, 64, 2, 256, false, false>>},
    {"fwd d128 128x32 w4 2stage", 128,
     &Forward<ForwardTile<kH, 128, 128, 32, 4, false, 2, 2>>,
     &ForwardBlocks<ForwardTile<kH, 128, 128, 32, 4, false, 2, 2>>},
    {"fwd d128 128x32 w4", 128,
     &Forward<ForwardTile<kH, 128, 128, 32, 4, false, 2>>,
     &ForwardBlocks<ForwardTile<kH, 128, 128, 32, 4, false, 2>>},
    {"fwd d128 256x32 w8", 128,
     &Forward<ForwardTile<kH, 128, 256, 32, 8, false, 1>>,
     &ForwardBlocks<ForwardTile<kH, 128, 256, 32, 8, false, 1>>},
};
const int kNumForwardVariants =
    sizeof(kForwardVariants) / sizeof(kForwardVariants[0]);

template <class Tile>
int SparseForwardBlocks() {
  if constexpr (IsWsForwardTile<Tile>::value) {
    return ForwardWsBlocks<Tile>();
  } else {
    return ForwardWgmmaBlocks<Tile>();
  }
}

template <class Tile>
constexpr SparseForwardVariant Sparse(const char* name) {
  return {name, Tile::kHeadDim, &SparseForward<Tile>,
          &SparseForwardBlocks<Tile>};
}

// Row tiles of 64 or 128 rows only: a 192-row tile would straddle layout
// blocks. The first of each head_dim is the shape the library ships
// (FlashConfig::ForwardWgmmaSparse); at head_dim 64 "ws 128x128 s2 qreg pp"
// is the one it ships for long rows (ForwardWgmmaSparseLongRows).
const SparseForwardVariant kSparseForwardVariants[] = {
    Sparse<WgmmaForwardTile<kH, 1, 128, 3>>(
        "sparse fwd d64 wgmma 64x128 1wg min3"),
    Sparse<WgmmaForwardTile<kH, 1, 128, 2>>(
        "sparse fwd d64 wgmma 64x128 1wg min2"),
    Sparse<WgmmaForwardTile<kH, 1, 128, 2, 64, true>>(
        "sparse fwd d64 wgmma 64x128 1wg min2 qreg"),
    Sparse<WgmmaForwardTile<kH, 1, 128, 3, 64, false, 4>>(
        "sparse fwd d64 wgmma 64x128 1wg min3 fmaexp4"),
    Sparse<WgmmaForwardTile<kH, 1, 64, 3>>(
        "sparse fwd d64 wgmma 64x64 1wg min3"),
    Sparse<WgmmaForwardTile<kH, 1, 64, 4>>(
        "sparse fwd d64 wgmma 64x64 1wg min4"),
    Sparse<WgmmaForwardTile<kH, 2, 64, 2>>(
        "sparse fwd d64 wgmma 128x64 2wg min2"),
    Sparse<WgmmaForwardTile<kH, 2, 128, 1>>(
        "sparse fwd d64 wgmma 128x128 2wg min1"),
    Sparse<WsForwardTile<kH, 2, 128, 2, 64, true, true>>(
        "sparse fwd d64 ws 128x128 s2 qreg pp"),
    Sparse<WsForwardTile<kH, 2, 128, 3, 64, true, true>>(
        "sparse fwd d64 ws 128x128 s3 qreg pp"),
    Sparse<WsForwardTile<kH, 2, 128, 2, 128, true, true>>(
        "sparse fwd d128 ws 128x128 s2 qreg pp"),
    Sparse<WsForwardTile<kH, 2, 64, 3, 128, true, true>>(
        "sparse fwd d128 ws 128x64 s3 qreg pp"),
    Sparse<WgmmaForwardTile<kH, 1, 64, 2, 128>>(
        "sparse fwd d128 wgmma 64x64 1wg min2"),
    Sparse<WgmmaForwardTile<kH, 1, 128, 1, 128>>(
        "sparse fwd d128 wgmma 64x128 1wg min1"),
    Sparse<WgmmaForwardTile<kH, 2, 64, 1, 128>>(
        "sparse fwd d128 wgmma 128x64 2wg min1"),
};
const int kNumSparseForwardVariants =
    sizeof(kSparseForwardVariants) / sizeof(kSparseForwardVariants[0]);

// The fused backward (flash_backward_wgmma.cuh): two warpgroups of 64 keys,
// 128-query tiles at head_dim 64, 64-query tiles at 128.
using Fused64 = WgmmaKeyValueTile<kH, 128, 1, 64, 0, 2, FusedQuery::kUnordered>;
using Fused64Ordered =
    WgmmaKeyValueTile<kH, 128, 1, 64, 0, 2, FusedQuery::kOrdered>;
using Fused128 =
    WgmmaKeyValueTile<kH, 64, 1, 128, 0, 2, FusedQuery::kUnordered>;
using Fused128Ordered =
    WgmmaKeyValueTile<kH, 64, 1, 128, 0, 2, FusedQuery::kOrdered>;
using Fused64Bulk =
    WgmmaKeyValueTile<kH, 128, 1, 64, 0, 2, FusedQuery::kUnorderedBulk>;
using Fused128Bulk =
    WgmmaKeyValueTile<kH, 64, 1, 128, 0, 2, FusedQuery::kUnorderedBulk>;

// Head_dim 256 computes dV and dK in launches of their own.
constexpr KeyValuePart kValueOnly = KeyValuePart::kValueOnly;
constexpr KeyValuePart kKeyOnly = KeyValuePart::kKeyOnly;
template <KeyValuePart kPart>
using KeyValueD256 = KeyValueTile<kH, 256, 32, 4, false, kPart, 1>;
template <KeyValuePart kPart>
using KeyValueWgmmaD256 =
    WgmmaKeyValueTile<kH, 64, 1, 256, 0, 1, FusedQuery::kNone, kPart>;

// Key/value: head_dim / query rows per tile / warps (16 keys each).
// Query: head_dim / key rows per tile / warps (16 queries each).
const BackwardVariant kBackwardVariants[] = {
    {"kv d64 q64 w4 kvreg", 64,
     &KeyValue<KeyValueTile<kH, 64, 64, 4, true, KeyValuePart::kBoth, 2>>,
     &KeyValueBlocks<
         KeyValueTile<kH, 64, 64, 4, true, KeyValuePart::kBoth, 2>>},
    {"kv d64 q64 w8 kvreg", 64,
     &KeyValue<KeyValueTile<kH, 64, 64, 8, true, KeyValuePart::kBoth, 1>>,
     &KeyValueBlocks<
         KeyValueTile<kH, 64, 64, 8, true, KeyValuePart::kBoth, 1>>},
    {"kv d64 wgmma q64 min2", 64, &KeyValueWgmma<WgmmaKeyValueTile<kH, 64, 2>>,
     &KeyValueWgmmaBlocks<WgmmaKeyValueTile<kH, 64, 2>>},
    {"kv d64 wgmma q64 min3", 64, &KeyValueWgmma<WgmmaKeyValueTile<kH, 64, 3>>,
     &KeyValueWgmmaBlocks<WgmmaKeyValueTile<kH, 64, 3>>},
    {"kv d64 wgmma q128 min1", 64,
     &KeyValueWgmma<WgmmaKeyValueTile<kH, 128, 1>>,
     &KeyValueWgmmaBlocks<WgmmaKeyValueTile<kH, 128, 1>>},
    {"kv d64 wgmma q128 min1 fmaexp4", 64,
     &KeyValueWgmma<WgmmaKeyValueTile<kH, 128, 1, 64, 4>>,
     &KeyValueWgmmaBlocks<WgmmaKeyValueTile<kH, 128, 1, 64, 4>>},
    {"kv d64 wgmma q128 min1 cpasync", 64,
     &KeyValueWgmmaCpAsync<WgmmaKeyValueTile<kH, 128, 1>>,
     &KeyValueWgmmaBlocks<WgmmaKeyValueTile<kH, 128, 1>>},
    {"kvq d64 fused k128 q128", 64, &FusedBackward<Fused64>,
     &KeyValueWgmmaBlocks<Fused64>},
    {"kvq d64 fused k128 q128 ordered", 64, &FusedBackward<Fused64Ordered>,
     &KeyValueWgmmaBlocks<Fused64Ordered>},
    {"kvq d128 fused k128 q64", 128, &FusedBackward<Fused128>,
     &KeyValueWgmmaBlocks<Fused128>},
    {"kvq d128 fused k128 q64 ordered", 128, &FusedBackward<Fused128Ordered>,
     &KeyValueWgmmaBlocks<Fused128Ordered>},
    {"kvq d64 fused k128 q128 bulk", 64, &FusedBackward<Fused64Bulk>,
     &KeyValueWgmmaBlocks<Fused64Bulk>},
    {"kvq d128 fused k128 q64 bulk", 128, &FusedBackward<Fused128Bulk>,
     &KeyValueWgmmaBlocks<Fused128Bulk>},
    {"q d64 k64 w4 qreg", 64, &Query<QueryTile<kH, 64, 64, 4, true, 2>>,
     &QueryBlocks<QueryTile<kH, 64, 64, 4, true, 2>>},
    {"q d64 wgmma k64 min3", 64, &QueryWgmma<WgmmaQueryTile<kH, 64, 3>>,
     &QueryWgmmaBlocks<WgmmaQueryTile<kH, 64, 3>>},
    {"q d64 wgmma k64 min3 fmaexp4", 64,
     &QueryWgmma<WgmmaQueryTile<kH, 64, 3, 64, 4>>,
     &QueryWgmmaBlocks<WgmmaQueryTile<kH, 64, 3, 64, 4>>},
    {"q d64 wgmma k64 min4", 64, &QueryWgmma<WgmmaQueryTile<kH, 64, 4>>,
     &QueryWgmmaBlocks<WgmmaQueryTile<kH, 64, 4>>},
    {"q d64 wgmma k128 min2", 64, &QueryWgmma<WgmmaQueryTile<kH, 128, 2>>,
     &QueryWgmmaBlocks<WgmmaQueryTile<kH, 128, 2>>},
    {"q d64 wgmma k128 min2 fmaexp4", 64,
     &QueryWgmma<WgmmaQueryTile<kH, 128, 2, 64, 4>>,
     &QueryWgmmaBlocks<WgmmaQueryTile<kH, 128, 2, 64, 4>>},
    {"q d64 wgmma k128 min2 fmaexp2", 64,
     &QueryWgmma<WgmmaQueryTile<kH, 128, 2, 64, 2>>,
     &QueryWgmmaBlocks<WgmmaQueryTile<kH, 128, 2, 64, 2>>},
    {"q d64 wgmma k128 min2 cpasync", 64,
     &QueryWgmmaCpAsync<WgmmaQueryTile<kH, 128, 2>>,
     &QueryWgmmaBlocks<WgmmaQueryTile<kH, 128, 2>>},
    {"q d64 wgmma k64 min3 cpasync", 64,
     &QueryWgmmaCpAsync<WgmmaQueryTile<kH, 64, 3>>,
     &QueryWgmmaBlocks<WgmmaQueryTile<kH, 64, 3>>},
    {"q d64 k64 w8 qreg", 64, &Query<QueryTile<kH, 64, 64, 8, true, 1>>,
     &QueryBlocks<QueryTile<kH, 64, 64, 8, true, 1>>},
    {"kv d128 wgmma q64 min2", 128,
     &KeyValueWgmma<WgmmaKeyValueTile<kH, 64, 2, 128>>,
     &KeyValueWgmmaBlocks<WgmmaKeyValueTile<kH, 64, 2, 128>>},
    {"kv d128 wgmma q64 min2 cpasync", 128,
     &KeyValueWgmmaCpAsync<WgmmaKeyValueTile<kH, 64, 2, 128>>,
     &KeyValueWgmmaBlocks<WgmmaKeyValueTile<kH, 64, 2, 128>>},
    {"kv d128 wgmma q64 min1", 128,
     &KeyValueWgmma<WgmmaKeyValueTile<kH, 64, 1, 128>>,
     &KeyValueWgmmaBlocks<WgmmaKeyValueTile<kH, 64, 1, 128>>},
    {"q d128 wgmma k64 min2", 128, &QueryWgmma<WgmmaQueryTile<kH, 64, 2, 128>>,
     &QueryWgmmaBlocks<WgmmaQueryTile<kH, 64, 2, 128>>},
    {"q d128 wgmma k64 min2 cpasync", 128,
     &QueryWgmmaCpAsync<WgmmaQueryTile<kH, 64, 2, 128>>,
     &QueryWgmmaBlocks<WgmmaQueryTile<kH, 64, 2, 128>>},
    {"q d128 wgmma k64 min1", 128, &QueryWgmma<WgmmaQueryTile<kH, 64, 1, 128>>,
     &QueryWgmmaBlocks<WgmmaQueryTile<kH, 64, 1, 128>>},
    {"kv d128 q32 w4", 128,
     &KeyValue<KeyValueTile<kH, 128, 32, 4, false, KeyValuePart::kBoth, 2>>,
     &KeyValueBlocks<
         KeyValueTile<kH, 128, 32, 4, false, KeyValuePart::kBoth, 2>>},
    {"q d128 k64 w4", 128, &Query<QueryTile<kH, 128, 64, 4, false, 2>>,
     &QueryBlocks<QueryTile<kH, 128, 64, 4, false, 2>>},
    {"q d128 k64 w8", 128, &Query<QueryTile<kH, 128, 64, 8, false, 1>>,
     &QueryBlocks<QueryTile<kH, 128, 64, 8, false, 1>>},
    {"kv d256 q32 w4 dV only", 256, &KeyValue<KeyValueD256<kValueOnly>>,
     &KeyValueBlocks<KeyValueD256<kValueOnly>>},
    {"kv d256 q32 w4 dK only", 256, &KeyValue<KeyValueD256<kKeyOnly>>,
     &KeyValueBlocks<KeyValueD256<kKeyOnly>>},
    {"q d256 k32 w4", 256, &Query<QueryTile<kH, 256, 32, 4, false, 1>>,
     &QueryBlocks<QueryTile<kH, 256, 32, 4, false, 1>>},
    {"kv d256 wgmma q64 dV only", 256,
     &KeyValueWgmma<KeyValueWgmmaD256<kValueOnly>>,
     &KeyValueWgmmaBlocks<KeyValueWgmmaD256<kValueOnly>>},
    {"kv d256 wgmma q64 dK only", 256,
     &KeyValueWgmma<KeyValueWgmmaD256<kKeyOnly>>,
     &KeyValueWgmmaBlocks<KeyValueWgmmaD256<kKeyOnly>>},
    {"q d256 wgmma k64", 256, &QueryWgmma<WgmmaQueryTile<kH, 64, 1, 256>>,
     &QueryWgmmaBlocks<WgmmaQueryTile<kH, 64, 1, 256>>},
};
const int kNumBackwardVariants =
    sizeof(kBackwardVariants) / sizeof(kBackwardVariants[0]);

cudaError_t RunDelta(const BackwardParams& params, float* delta,
                     cudaStream_t stream) {
  return LaunchFlashDelta<kH>(params, delta, stream);
}

}  // namespace sweep
}  // namespace dilated
