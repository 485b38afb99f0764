#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "models/cuda/device_ops.h"

namespace dilated {
namespace models {
namespace gpu {
namespace {

constexpr int kThreads = 256;
// Enough blocks to fill a large GPU; grid-stride loops cover the rest.
constexpr int64_t kMaxBlocks = 65536;

__device__ __forceinline__ float Load(const void* base, int64_t i,
                                      DataType dtype) {
  switch (dtype) {
    case DataType::kFloat16:
      return __half2float(static_cast<const __half*>(base)[i]);
    case DataType::kBFloat16:
      return __bfloat162float(static_cast<const __nv_bfloat16*>(base)[i]);
    case DataType::kFloat32:
    default:  // int32 and bool tensors never reach a float conversion
      break;
  }
  return static_cast<const float*>(base)[i];
}

__device__ __forceinline__ void Store(void* base, int64_t i, DataType dtype,
                                      float value) {
  switch (dtype) {
    case DataType::kFloat16:
      static_cast<__half*>(base)[i] = __float2half_rn(value);
      return;
    case DataType::kBFloat16:
      static_cast<__nv_bfloat16*>(base)[i] = __float2bfloat16_rn(value);
      return;
    case DataType::kFloat32:
    default:  // int32 and bool tensors never reach a float conversion
      break;
  }
  static_cast<float*>(base)[i] = value;
}

// Returns the sum of `value` over the block (every thread gets it).
__device__ float BlockSum(float value, float* shared) {
  for (int offset = 16; offset > 0; offset /= 2) {
    value += __shfl_xor_sync(0xffffffffu, value, offset);
  }
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  __syncthreads();  // `shared` may still be read by a previous call
  if (lane == 0) shared[warp] = value;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < kThreads / 32; ++w) total += shared[w];
  return total;
}

__device__ __forceinline__ float Activate(float v, RowActivation activation) {
  constexpr float kInverseSqrt2 = 0.70710678118654752f;
  switch (activation) {
    case RowActivation::kRelu:
      return fmaxf(v, 0.0f);
    case RowActivation::kGelu:
      return 0.5f * v * (1.0f + erff(v * kInverseSqrt2));
    case RowActivation::kNone:
      break;
  }
  return v;
}

// One block per row, the row read three times: any width and alignment.
__global__ void LayerNormBlockKernel(LayerNormArgs a) {
  __shared__ float shared[kThreads / 32];
  for (int64_t row = blockIdx.x; row < a.rows; row += gridDim.x) {
    const int64_t in = row * a.x_row_stride;
    const int64_t out = row * a.y_row_stride;
    float sum = 0.0f;
    for (int64_t c = threadIdx.x; c < a.features; c += kThreads) {
      sum += Activate(Load(a.x, in + c, a.dtype), a.activation);
    }
    const float mean = BlockSum(sum, shared) / static_cast<float>(a.features);
    float squares = 0.0f;
    for (int64_t c = threadIdx.x; c < a.features; c += kThreads) {
      const float d = Activate(Load(a.x, in + c, a.dtype), a.activation) - mean;
      squares += d * d;
    }
    const float variance =
        BlockSum(squares, shared) / static_cast<float>(a.features);
    const float inverse_std = 1.0f / sqrtf(variance + a.eps);
    for (int64_t c = threadIdx.x; c < a.features; c += kThreads) {
      const float d = Activate(Load(a.x, in + c, a.dtype), a.activation) - mean;
      Store(a.y, out + c, a.dtype, d * inverse_std * a.weight[c] + a.bias[c]);
    }
    __syncthreads();  // the row is written before y == x is read again
  }
}

__device__ __forceinline__ float ToFloat(__half v) { return __half2float(v); }
__device__ __forceinline__ float ToFloat(__nv_bfloat16 v) {
  return __bfloat162float(v);
}
__device__ __forceinline__ float ToFloat(float v) { return v; }

template <typename T>
__device__ __forceinline__ T FromFloat(float v);
template <>
__device__ __forceinline__ __half FromFloat<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 FromFloat<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}
template <>
__device__ __forceinline__ float FromFloat<float>(float v) {
  return v;
}

__device__ __forceinline__ float WarpSum(float value) {
  for (int offset = 16; offset > 0; offset /= 2) {
    value += __shfl_xor_sync(0xffffffffu, value, offset);
  }
  return value;
}

constexpr int kWarpRowsPerBlock = 4;

// One warp per row: lane l holds the row's 16-byte vectors l, l + 32, ...
// (at most kMaxVectors of them) in registers, so the row is read once.
// Needs rows of whole, 16-byte aligned vectors.
template <typename T, int kMaxVectors>
__global__ void __launch_bounds__(32 * kWarpRowsPerBlock)
    LayerNormWarpKernel(LayerNormArgs a) {
  constexpr int kPerVector = 16 / sizeof(T);
  const int lane = threadIdx.x % 32;
  const int vectors = static_cast<int>(a.features / kPerVector);
  const int64_t warps = int64_t{gridDim.x} * kWarpRowsPerBlock;
  for (int64_t row = int64_t{blockIdx.x} * kWarpRowsPerBlock + threadIdx.x / 32;
       row < a.rows; row += warps) {
    const T* x = static_cast<const T*>(a.x) + row * a.x_row_stride;
    T* y = static_cast<T*>(a.y) + row * a.y_row_stride;
    float values[kMaxVectors][kPerVector];
    float sum = 0.0f;
#pragma unroll
    for (int i = 0; i < kMaxVectors; ++i) {
      const int vector = lane + 32 * i;
      if (vector < vectors) {
        const uint4 raw =
            *reinterpret_cast<const uint4*>(x + vector * kPerVector);
        const T* elements = reinterpret_cast<const T*>(&raw);
#pragma unroll
        for (int j = 0; j < kPerVector; ++j) {
          values[i][j] = Activate(ToFloat(elements[j]), a.activation);
          sum += values[i][j];
        }
      }
    }
    const float mean = WarpSum(sum) / static_cast<float>(a.features);
    float squares = 0.0f;
#pragma unroll
    for (int i = 0; i < kMaxVectors; ++i) {
      if (lane + 32 * i < vectors) {
#pragma unroll
        for (int j = 0; j < kPerVector; ++j) {
          const float d = values[i][j] - mean;
          squares += d * d;
        }
      }
    }
    const float variance = WarpSum(squares) / static_cast<float>(a.features);
    const float inverse_std = 1.0f / sqrtf(variance + a.eps);
#pragma unroll
    for (int i = 0; i < kMaxVectors; ++i) {
      const int vector = lane + 32 * i;
      if (vector < vectors) {
        uint4 raw;
        T* elements = reinterpret_cast<T*>(&raw);
#pragma unroll
        for (int j = 0; j < kPerVector; ++j) {
          const int c = vector * kPerVector + j;
          elements[j] = FromFloat<T>((values[i][j] - mean) * inverse_std *
                                         __ldg(a.weight + c) +
                                     __ldg(a.bias + c));
        }
        *reinterpret_cast<uint4*>(y + vector * kPerVector) = raw;
      }
    }
  }
}

template <typename T, int kMaxVectors>
void LaunchWarpKernel(const LayerNormArgs& a, cudaStream_t stream) {
  const int64_t blocks = (a.rows + kWarpRowsPerBlock - 1) / kWarpRowsPerBlock;
  LayerNormWarpKernel<T, kMaxVectors>
      <<<static_cast<int>(blocks < kMaxBlocks * 16 ? blocks : kMaxBlocks * 16),
         32 * kWarpRowsPerBlock, 0, stream>>>(a);
}

// Launches the warp kernel with the fewest register vectors that hold a row;
// false when a row needs more than 16 vectors per lane (more would spill).
template <typename T>
bool LaunchWarpKernelFor(const LayerNormArgs& a, cudaStream_t stream) {
  constexpr int64_t kPerVector = 16 / sizeof(T);
  const int64_t per_lane = (a.features / kPerVector + 31) / 32;
  if (per_lane <= 1) {
    LaunchWarpKernel<T, 1>(a, stream);
  } else if (per_lane <= 2) {
    LaunchWarpKernel<T, 2>(a, stream);
  } else if (per_lane <= 4) {
    LaunchWarpKernel<T, 4>(a, stream);
  } else if (per_lane <= 8) {
    LaunchWarpKernel<T, 8>(a, stream);
  } else if (per_lane <= 16) {
    LaunchWarpKernel<T, 16>(a, stream);
  } else {
    return false;
  }
  return true;
}

bool Aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

// Whether every row of x and y is whole 16-byte vectors, 16-byte aligned.
bool VectorRows(const LayerNormArgs& a, int64_t element_bytes) {
  const int64_t per_vector = 16 / element_bytes;
  return a.features % per_vector == 0 && a.x_row_stride % per_vector == 0 &&
         a.y_row_stride % per_vector == 0 && Aligned16(a.x) && Aligned16(a.y);
}

// One thread per (batch, channel): the column's sum, then the division.
__global__ void GroupSumsKernel(void* x, int64_t batch, int64_t seq,
                                int64_t width, int64_t num_groups,
                                DataType dtype) {
  const int64_t column = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (column >= batch * width) return;
  const int64_t b = column / width;
  const int64_t c = column % width;
  const int64_t base = b * seq * width + c;
  double sum = 0.0;
  for (int64_t n = 0; n < seq; ++n) sum += Load(x, base + n * width, dtype);
  const double divisor = static_cast<double>(num_groups) * sum;
  for (int64_t n = 0; n < seq; ++n) {
    const int64_t i = base + n * width;
    Store(x, i, dtype, static_cast<float>(Load(x, i, dtype) / divisor));
  }
}

}  // namespace

cudaError_t LayerNormRows(const LayerNormArgs& args, cudaStream_t stream) {
  if (args.rows == 0) return cudaSuccess;
  bool launched = false;
  switch (args.dtype) {
    case DataType::kFloat16:
      launched =
          VectorRows(args, 2) && LaunchWarpKernelFor<__half>(args, stream);
      break;
    case DataType::kBFloat16:
      launched = VectorRows(args, 2) &&
                 LaunchWarpKernelFor<__nv_bfloat16>(args, stream);
      break;
    case DataType::kFloat32:
      launched =
          VectorRows(args, 4) && LaunchWarpKernelFor<float>(args, stream);
      break;
    default:  // int32 and bool tensors never reach a LayerNorm
      break;
  }
  if (!launched) {
    const int blocks =
        static_cast<int>(args.rows < kMaxBlocks ? args.rows : kMaxBlocks);
    LayerNormBlockKernel<<<blocks, kThreads, 0, stream>>>(args);
  }
  return cudaGetLastError();
}

cudaError_t NormalizeGroupSums(void* x, int64_t batch, int64_t seq,
                               int64_t width, int64_t num_groups,
                               DataType dtype, cudaStream_t stream) {
  const int64_t columns = batch * width;
  if (columns == 0) return cudaSuccess;
  const int blocks = static_cast<int>((columns + kThreads - 1) / kThreads);
  GroupSumsKernel<<<blocks, kThreads, 0, stream>>>(x, batch, seq, width,
                                                   num_groups, dtype);
  return cudaGetLastError();
}

}  // namespace gpu
}  // namespace models
}  // namespace dilated
