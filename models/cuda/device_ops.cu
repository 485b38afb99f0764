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

constexpr int kRowKernelThreads = 128;

// Returns the sum of `value` over the kThreadsPerRow threads of a row (a warp,
// or the whole block through `partials`); every thread of the row gets it.
template <int kThreadsPerRow>
__device__ __forceinline__ float RowSum(float value, float* partials) {
  value = WarpSum(value);
  if (kThreadsPerRow == 32) return value;
  if (threadIdx.x % 32 == 0) partials[threadIdx.x / 32] = value;
  __syncthreads();
  float total = 0.0f;
#pragma unroll
  for (int w = 0; w < kThreadsPerRow / 32; ++w) total += partials[w];
  __syncthreads();  // `partials` is free for the next sum
  return total;
}

// kThreadsPerRow threads per row (a warp, or the block's 128 for wide rows):
// thread t holds the row's 16-byte vectors t, t + kThreadsPerRow, ... (at
// most kMaxVectors of them) in registers, so the row is read once. Needs
// rows of whole, 16-byte aligned vectors. The grid is sized to stay
// resident: each block copies the float32 weight and bias into shared memory
// once (2 * features floats) and then walks rows, so the parameters are read
// as 16-byte vectors from shared memory rather than element by element.
template <typename T, int kThreadsPerRow, int kMaxVectors>
__global__ void __launch_bounds__(kRowKernelThreads)
    LayerNormRowKernel(LayerNormArgs a) {
  constexpr int kPerVector = 16 / sizeof(T);
  constexpr int kFloat4s = kPerVector / 4;  // float4s of parameters a vector
  constexpr int kRowsPerBlock = kRowKernelThreads / kThreadsPerRow;
  extern __shared__ float4 parameters[];  // weight, then bias
  __shared__ float partials[kRowKernelThreads / 32];
  const int64_t features4 = a.features / 4;
  for (int64_t i = threadIdx.x; i < features4; i += blockDim.x) {
    parameters[i] = __ldg(reinterpret_cast<const float4*>(a.weight) + i);
    parameters[features4 + i] =
        __ldg(reinterpret_cast<const float4*>(a.bias) + i);
  }
  __syncthreads();
  const float4* weight4 = parameters;
  const float4* bias4 = parameters + features4;
  const int t = threadIdx.x % kThreadsPerRow;
  const int vectors = static_cast<int>(a.features / kPerVector);
  const int64_t row_step = int64_t{gridDim.x} * kRowsPerBlock;
  for (int64_t row =
           int64_t{blockIdx.x} * kRowsPerBlock + threadIdx.x / kThreadsPerRow;
       row < a.rows; row += row_step) {
    const T* x = static_cast<const T*>(a.x) + row * a.x_row_stride;
    T* y = static_cast<T*>(a.y) + row * a.y_row_stride;
    float values[kMaxVectors][kPerVector];
    float sum = 0.0f;
#pragma unroll
    for (int i = 0; i < kMaxVectors; ++i) {
      const int vector = t + kThreadsPerRow * i;
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
    const float mean =
        RowSum<kThreadsPerRow>(sum, partials) / static_cast<float>(a.features);
    float squares = 0.0f;
#pragma unroll
    for (int i = 0; i < kMaxVectors; ++i) {
      if (t + kThreadsPerRow * i < vectors) {
#pragma unroll
        for (int j = 0; j < kPerVector; ++j) {
          const float d = values[i][j] - mean;
          squares += d * d;
        }
      }
    }
    const float variance = RowSum<kThreadsPerRow>(squares, partials) /
                           static_cast<float>(a.features);
    const float inverse_std = 1.0f / sqrtf(variance + a.eps);
#pragma unroll
    for (int i = 0; i < kMaxVectors; ++i) {
      const int vector = t + kThreadsPerRow * i;
      if (vector < vectors) {
        uint4 raw;
        T* elements = reinterpret_cast<T*>(&raw);
#pragma unroll
        for (int f = 0; f < kFloat4s; ++f) {
          const float4 w = weight4[vector * kFloat4s + f];
          const float4 b = bias4[vector * kFloat4s + f];
          const float ws[4] = {w.x, w.y, w.z, w.w};
          const float bs[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            elements[4 * f + j] = FromFloat<T>(
                (values[i][4 * f + j] - mean) * inverse_std * ws[j] + bs[j]);
          }
        }
        *reinterpret_cast<uint4*>(y + vector * kPerVector) = raw;
      }
    }
  }
}

template <typename T, int kThreadsPerRow, int kMaxVectors>
cudaError_t LaunchRowKernel(const LayerNormArgs& a, cudaStream_t stream) {
  const auto kernel = LayerNormRowKernel<T, kThreadsPerRow, kMaxVectors>;
  const size_t shared_bytes = 2 * a.features * sizeof(float);
  int device = 0, multiprocessors = 0, resident = 0;
  cudaError_t error = cudaGetDevice(&device);
  // Rows past 6K features need more than the default 48 KiB.
  if (error == cudaSuccess) {
    error = cudaFuncSetAttribute(kernel,
                                 cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 static_cast<int>(shared_bytes));
  }
  if (error == cudaSuccess) {
    error = cudaDeviceGetAttribute(&multiprocessors,
                                   cudaDevAttrMultiProcessorCount, device);
  }
  if (error == cudaSuccess) {
    error = cudaOccupancyMaxActiveBlocksPerMultiprocessor(
        &resident, kernel, kRowKernelThreads, shared_bytes);
  }
  if (error != cudaSuccess) return error;
  constexpr int kRowsPerBlock = kRowKernelThreads / kThreadsPerRow;
  const int64_t needed = (a.rows + kRowsPerBlock - 1) / kRowsPerBlock;
  const int64_t fit = int64_t{multiprocessors} * (resident > 0 ? resident : 1);
  kernel<<<static_cast<int>(needed < fit ? needed : fit), kRowKernelThreads,
           shared_bytes, stream>>>(a);
  return cudaGetLastError();
}

// Launches the row kernel that holds a row in the fewest registers: a warp
// per row up to 4 vectors a lane, else the block per row up to 8 vectors a
// thread (more would spill), and returns its launch error;
// cudaErrorNotSupported, launching nothing, for wider rows.
template <typename T>
cudaError_t LaunchRowKernelFor(const LayerNormArgs& a, cudaStream_t stream) {
  constexpr int64_t kPerVector = 16 / sizeof(T);
  const int64_t vectors = a.features / kPerVector;
  const int64_t per_lane = (vectors + 31) / 32;
  if (per_lane <= 1) return LaunchRowKernel<T, 32, 1>(a, stream);
  if (per_lane <= 2) return LaunchRowKernel<T, 32, 2>(a, stream);
  if (per_lane <= 4) return LaunchRowKernel<T, 32, 4>(a, stream);
  const int64_t per_thread =
      (vectors + kRowKernelThreads - 1) / kRowKernelThreads;
  if (per_thread <= 2)
    return LaunchRowKernel<T, kRowKernelThreads, 2>(a, stream);
  if (per_thread <= 4)
    return LaunchRowKernel<T, kRowKernelThreads, 4>(a, stream);
  if (per_thread <= 8)
    return LaunchRowKernel<T, kRowKernelThreads, 8>(a, stream);
  return cudaErrorNotSupported;
}

bool Aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

// Whether every row of x and y is whole 16-byte vectors, 16-byte aligned,
// and the parameters are 16-byte aligned.
bool VectorRows(const LayerNormArgs& a, int64_t element_bytes) {
  const int64_t per_vector = 16 / element_bytes;
  return a.features % per_vector == 0 && a.x_row_stride % per_vector == 0 &&
         a.y_row_stride % per_vector == 0 && Aligned16(a.x) && Aligned16(a.y) &&
         Aligned16(a.weight) && Aligned16(a.bias);
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
  cudaError_t warp_launch = cudaErrorNotSupported;
  switch (args.dtype) {
    case DataType::kFloat16:
      if (VectorRows(args, 2)) {
        warp_launch = LaunchRowKernelFor<__half>(args, stream);
      }
      break;
    case DataType::kBFloat16:
      if (VectorRows(args, 2)) {
        warp_launch = LaunchRowKernelFor<__nv_bfloat16>(args, stream);
      }
      break;
    case DataType::kFloat32:
      if (VectorRows(args, 4)) {
        warp_launch = LaunchRowKernelFor<float>(args, stream);
      }
      break;
    default:  // int32 and bool tensors never reach a LayerNorm
      break;
  }
  if (warp_launch != cudaErrorNotSupported) return warp_launch;
  const int blocks =
      static_cast<int>(args.rows < kMaxBlocks ? args.rows : kMaxBlocks);
  LayerNormBlockKernel<<<blocks, kThreads, 0, stream>>>(args);
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
