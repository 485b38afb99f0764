// The merge and gradient sums of "longnet" on CUDA; see longnet_merge.h.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>

#include "kernels/cuda/longnet_merge.h"

namespace dilated {
namespace kernels {
namespace gpu {
namespace {

using kernels::LongNetBranchOutputs;

constexpr int kWarps = 8;  // (row, head) pairs per thread block.

__device__ __forceinline__ float Load(const float* x) { return *x; }
__device__ __forceinline__ float Load(const __half* x) {
  return __half2float(*x);
}
__device__ __forceinline__ float Load(const __nv_bfloat16* x) {
  return __bfloat162float(*x);
}
__device__ __forceinline__ void Store(float x, float* dst) { *dst = x; }
__device__ __forceinline__ void Store(float x, __half* dst) {
  *dst = __float2half_rn(x);
}
__device__ __forceinline__ void Store(float x, __nv_bfloat16* dst) {
  *dst = __float2bfloat16_rn(x);
}

// The (storage batch entry, row, head) of this warp; false past the end.
struct RowHead {
  int64_t index;  // Over rows * heads, row-major.
  int64_t b, n, h;
};
__device__ __forceinline__ bool ThisWarps(const ForwardParams& p, RowHead* r) {
  r->index = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  const int64_t rows = StorageBatch(p) * p.seq_len;
  if (r->index >= rows * p.num_heads) return false;
  r->h = r->index % p.num_heads;
  const int64_t row = r->index / p.num_heads;
  r->b = IsPacked(p) ? 0 : row / p.seq_len;
  r->n = IsPacked(p) ? row : row % p.seq_len;
  return true;
}

template <typename T>
__device__ __forceinline__ T* Row(const TensorParams& t, const RowHead& r) {
  return static_cast<T*>(t.data) + r.b * t.stride_b + r.n * t.stride_n +
         r.h * t.stride_h;
}

template <typename T>
__global__ void MergeKernel(ForwardParams p, LongNetBranchOutputs branches) {
  RowHead r;
  if (!ThisWarps(p, &r)) return;
  const int lane = threadIdx.x % 32;
  float lse[kMaxGroups];
  float max = -INFINITY;
  for (int i = 0; i < branches.count; ++i) {
    lse[i] = branches.lse[i][r.b * branches.lse_stride_b +
                             r.h * branches.lse_stride_h + r.n];
    max = fmaxf(max, lse[i]);
  }
  float total = 0.0f;
  if (max != -INFINITY) {
    for (int i = 0; i < branches.count; ++i) {
      lse[i] = __expf(lse[i] - max);
      total += lse[i];
    }
  }
  T* out = Row<T>(p.out, r);
  for (int64_t a = lane; a < p.head_dim; a += 32) {
    float sum = 0.0f;
    for (int i = 0; i < branches.count && total > 0.0f; ++i) {
      if (lse[i] > 0.0f) {
        sum += lse[i] / total * Load(Row<const T>(branches.out[i], r) + a);
      }
    }
    Store(sum, out + a);
  }
  if (p.lse != nullptr && lane == 0) {
    p.lse[r.b * p.lse_stride_b + r.h * p.lse_stride_h + r.n] =
        total > 0.0f ? max + logf(total) : -INFINITY;
  }
}

template <typename T>
__global__ void AccumulateKernel(ForwardParams p, TensorParams t, float* sum) {
  RowHead r;
  if (!ThisWarps(p, &r)) return;
  const T* row = Row<const T>(t, r);
  float* acc = sum + r.index * p.head_dim;
  for (int64_t a = threadIdx.x % 32; a < p.head_dim; a += 32) {
    acc[a] += Load(row + a);
  }
}

template <typename T>
__global__ void StoreKernel(ForwardParams p, const float* sum, TensorParams t) {
  RowHead r;
  if (!ThisWarps(p, &r)) return;
  T* row = Row<T>(t, r);
  const float* acc = sum + r.index * p.head_dim;
  for (int64_t a = threadIdx.x % 32; a < p.head_dim; a += 32) {
    Store(acc[a], row + a);
  }
}

unsigned Blocks(const ForwardParams& p) {
  const int64_t pairs = StorageBatch(p) * p.seq_len * p.num_heads;
  return static_cast<unsigned>((pairs + kWarps - 1) / kWarps);
}

template <typename F>
cudaError_t WithStorageType(DataType dtype, F f) {
  switch (dtype) {
    case DataType::kFloat32:
      return f(float{});
    case DataType::kFloat16:
      return f(__half{});
    case DataType::kBFloat16:
      return f(__nv_bfloat16{});
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace

cudaError_t LongNetMerge(const ForwardParams& p,
                         const LongNetBranchOutputs& branches,
                         cudaStream_t stream) {
  if (branches.count < 1 || branches.count > kMaxGroups) {
    return cudaErrorInvalidValue;
  }
  return WithStorageType(p.dtype, [&](auto zero) {
    using T = decltype(zero);
    MergeKernel<T><<<Blocks(p), 32 * kWarps, 0, stream>>>(p, branches);
    return cudaGetLastError();
  });
}

cudaError_t LongNetAccumulate(const ForwardParams& p, const TensorParams& t,
                              float* sum, cudaStream_t stream) {
  return WithStorageType(p.dtype, [&](auto zero) {
    using T = decltype(zero);
    AccumulateKernel<T><<<Blocks(p), 32 * kWarps, 0, stream>>>(p, t, sum);
    return cudaGetLastError();
  });
}

cudaError_t LongNetStore(const ForwardParams& p, const float* sum,
                         const TensorParams& t, cudaStream_t stream) {
  return WithStorageType(p.dtype, [&](auto zero) {
    using T = decltype(zero);
    StoreKernel<T><<<Blocks(p), 32 * kWarps, 0, stream>>>(p, sum, t);
    return cudaGetLastError();
  });
}

}  // namespace gpu
}  // namespace kernels
}  // namespace dilated
