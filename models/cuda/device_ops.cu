#include <cuda_bf16.h>
#include <cuda_fp16.h>

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

int Blocks(int64_t count) {
  const int64_t blocks = (count + kThreads - 1) / kThreads;
  return static_cast<int>(
      blocks < 1 ? 1 : (blocks > kMaxBlocks ? kMaxBlocks : blocks));
}

__global__ void BroadcastRowsKernel(const float* bias, int64_t rows,
                                    int64_t cols, DataType dtype, void* y) {
  const int64_t count = rows * cols;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count;
       i += int64_t{gridDim.x} * blockDim.x) {
    Store(y, i, dtype, bias == nullptr ? 0.0f : bias[i % cols]);
  }
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

// One block per row.
__global__ void LayerNormKernel(const void* x, int64_t rows, int64_t features,
                                const float* weight, const float* bias,
                                float eps, DataType dtype, void* y) {
  __shared__ float shared[kThreads / 32];
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int64_t base = row * features;
    float sum = 0.0f;
    for (int64_t c = threadIdx.x; c < features; c += kThreads) {
      sum += Load(x, base + c, dtype);
    }
    const float mean = BlockSum(sum, shared) / static_cast<float>(features);
    float squares = 0.0f;
    for (int64_t c = threadIdx.x; c < features; c += kThreads) {
      const float d = Load(x, base + c, dtype) - mean;
      squares += d * d;
    }
    const float variance =
        BlockSum(squares, shared) / static_cast<float>(features);
    const float inverse_std = 1.0f / sqrtf(variance + eps);
    for (int64_t c = threadIdx.x; c < features; c += kThreads) {
      const float d = Load(x, base + c, dtype) - mean;
      Store(y, base + c, dtype, d * inverse_std * weight[c] + bias[c]);
    }
    __syncthreads();  // the row is written before y == x is read again
  }
}

__global__ void ActivateKernel(bool gelu, void* x, int64_t count,
                               DataType dtype) {
  constexpr float kInverseSqrt2 = 0.70710678118654752f;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count;
       i += int64_t{gridDim.x} * blockDim.x) {
    const float v = Load(x, i, dtype);
    Store(x, i, dtype,
          gelu ? 0.5f * v * (1.0f + erff(v * kInverseSqrt2)) : fmaxf(v, 0.0f));
  }
}

__global__ void AddIntoKernel(const void* delta, void* x, int64_t count,
                              DataType dtype) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count;
       i += int64_t{gridDim.x} * blockDim.x) {
    Store(x, i, dtype, Load(x, i, dtype) + Load(delta, i, dtype));
  }
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

cudaError_t BroadcastRows(const float* bias, int64_t rows, int64_t cols,
                          DataType dtype, void* y, cudaStream_t stream) {
  if (rows * cols == 0) return cudaSuccess;
  BroadcastRowsKernel<<<Blocks(rows * cols), kThreads, 0, stream>>>(
      bias, rows, cols, dtype, y);
  return cudaGetLastError();
}

cudaError_t LayerNormRows(const void* x, int64_t rows, int64_t features,
                          const float* weight, const float* bias, float eps,
                          DataType dtype, void* y, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  const int blocks = static_cast<int>(rows < kMaxBlocks ? rows : kMaxBlocks);
  LayerNormKernel<<<blocks, kThreads, 0, stream>>>(x, rows, features, weight,
                                                   bias, eps, dtype, y);
  return cudaGetLastError();
}

cudaError_t Activate(bool gelu, void* x, int64_t count, DataType dtype,
                     cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  ActivateKernel<<<Blocks(count), kThreads, 0, stream>>>(gelu, x, count, dtype);
  return cudaGetLastError();
}

cudaError_t AddInto(const void* delta, void* x, int64_t count, DataType dtype,
                    cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  AddIntoKernel<<<Blocks(count), kThreads, 0, stream>>>(delta, x, count, dtype);
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
