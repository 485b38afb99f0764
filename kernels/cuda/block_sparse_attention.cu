// The block-sparse kernels on CUDA; see block_sparse_attention.h.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>

#include "kernels/cuda/block_sparse_attention.h"

namespace dilated {
namespace kernels {
namespace gpu {
namespace {

constexpr int kWarps = 4;  // Rows per thread block.
constexpr int kPerLane = kBlockSparseMaxHeadDim / 32;

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

__device__ __forceinline__ float WarpSum(float x) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) {
    x += __shfl_xor_sync(0xffffffffu, x, offset);
  }
  return x;
}

// Row n of head h of batch entry b of `t`, as T.
template <typename T>
__device__ __forceinline__ T* Row(const TensorParams& t, int64_t b, int64_t n,
                                  int64_t h) {
  return static_cast<T*>(t.data) + b * t.stride_b + n * t.stride_n +
         h * t.stride_h;
}

// Reads this lane's elements (lane, lane + 32, ...) of a row, times `scale`.
template <typename T>
__device__ __forceinline__ void LoadLanes(const T* row, int64_t dim,
                                          float scale, float (&x)[kPerLane]) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int t = 0; t < kPerLane; ++t) {
    const int64_t a = lane + 32 * t;
    x[t] = a < dim ? Load(row + a) * scale : 0.0f;
  }
}

template <typename T>
__device__ __forceinline__ void StoreLanes(const float (&x)[kPerLane],
                                           float scale, int64_t dim, T* row) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int t = 0; t < kPerLane; ++t) {
    const int64_t a = lane + 32 * t;
    if (a < dim) Store(x[t] * scale, row + a);
  }
}

template <typename T>
__device__ __forceinline__ float Dot(const float (&x)[kPerLane], const T* row,
                                     int64_t dim) {
  const int lane = threadIdx.x % 32;
  float sum = 0.0f;
#pragma unroll
  for (int t = 0; t < kPerLane; ++t) {
    const int64_t a = lane + 32 * t;
    if (a < dim) sum += x[t] * Load(row + a);
  }
  return WarpSum(sum);
}

__device__ __forceinline__ bool Padded(const ForwardParams& p, int64_t b,
                                       int64_t n) {
  const uint8_t* mask = p.sequence.key_padding_mask;
  return mask != nullptr && mask[b * p.sequence.mask_stride_b + n] != 0;
}

// The (batch, head, row) of this warp, or false past the sequence.
struct WarpRow {
  int64_t b, h, n;
};
__device__ __forceinline__ bool ThisWarpsRow(const ForwardParams& p,
                                             WarpRow* row) {
  row->n = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  row->h = blockIdx.y;
  row->b = blockIdx.z;
  return row->n < p.seq_len;
}

__device__ __forceinline__ float* LsePointer(const ForwardParams& p,
                                             const WarpRow& r) {
  return p.lse + r.b * p.lse_stride_b + r.h * p.lse_stride_h + r.n;
}

// Calls visit(key) for every key of query row r in the order of its
// block's list: active key blocks, causal and padded keys left out.
template <typename Visit>
__device__ __forceinline__ void ForEachKey(const ForwardParams& p,
                                           const BlockLists& lists,
                                           const WarpRow& r, Visit visit) {
  const int64_t bs = lists.block_size;
  const int64_t i = r.n / bs;
  const int64_t list = LayoutHead(lists, r.h) * lists.num_blocks + i;
  for (int32_t e = lists.row_begin[list]; e < lists.row_begin[list + 1]; ++e) {
    const int64_t j = lists.row_blocks[e];
    if (p.is_causal && j > i) continue;
    const int64_t end = p.is_causal && j == i ? r.n + 1 : (j + 1) * bs;
    for (int64_t key = j * bs; key < end; ++key) {
      if (!Padded(p, r.b, key)) visit(key);
    }
  }
}

template <typename T>
__global__ void ForwardKernel(ForwardParams p, BlockLists lists) {
  WarpRow r;
  if (!ThisWarpsRow(p, &r)) return;
  const int64_t d = p.head_dim;
  float q[kPerLane], acc[kPerLane] = {};
  LoadLanes(Row<const T>(p.q, r.b, r.n, r.h), d, p.softmax_scale, q);
  float max = -INFINITY, sum = 0.0f;
  if (!Padded(p, r.b, r.n)) {
    ForEachKey(p, lists, r, [&](int64_t key) {
      const float s = Dot(q, Row<const T>(p.k, r.b, key, r.h), d);
      const float new_max = fmaxf(max, s);
      const float alpha = __expf(max - new_max);  // 0 while max is -inf.
      const float weight = __expf(s - new_max);
      sum = sum * alpha + weight;
      float v[kPerLane];
      LoadLanes(Row<const T>(p.v, r.b, key, r.h), d, 1.0f, v);
#pragma unroll
      for (int t = 0; t < kPerLane; ++t)
        acc[t] = acc[t] * alpha + weight * v[t];
      max = new_max;
    });
  }
  StoreLanes(acc, sum > 0.0f ? 1.0f / sum : 0.0f, d,
             Row<T>(p.out, r.b, r.n, r.h));
  if (p.lse != nullptr && threadIdx.x % 32 == 0) {
    *LsePointer(p, r) = sum > 0.0f ? max + logf(sum) : -INFINITY;
  }
}

// D = rowsum(grad_out * out) of every row, [batch, heads, seq].
template <typename T>
__global__ void DeltaKernel(BackwardParams bp, float* delta) {
  const ForwardParams& p = bp.forward;
  WarpRow r;
  if (!ThisWarpsRow(p, &r)) return;
  float grad_out[kPerLane];
  LoadLanes(Row<const T>(bp.grad_out, r.b, r.n, r.h), p.head_dim, 1.0f,
            grad_out);
  const float d = Dot(grad_out, Row<const T>(p.out, r.b, r.n, r.h), p.head_dim);
  if (threadIdx.x % 32 == 0) {
    delta[(r.b * p.num_heads + r.h) * p.seq_len + r.n] = d;
  }
}

template <typename T>
__global__ void GradQueryKernel(BackwardParams bp, BlockLists lists,
                                const float* delta) {
  const ForwardParams& p = bp.forward;
  WarpRow r;
  if (!ThisWarpsRow(p, &r)) return;
  const int64_t d = p.head_dim;
  float grad_q[kPerLane] = {};
  const float lse = *LsePointer(p, r);
  if (isfinite(lse)) {
    float q[kPerLane], grad_out[kPerLane];
    LoadLanes(Row<const T>(p.q, r.b, r.n, r.h), d, p.softmax_scale, q);
    LoadLanes(Row<const T>(bp.grad_out, r.b, r.n, r.h), d, 1.0f, grad_out);
    const float row_delta = delta[(r.b * p.num_heads + r.h) * p.seq_len + r.n];
    ForEachKey(p, lists, r, [&](int64_t key) {
      const T* k_row = Row<const T>(p.k, r.b, key, r.h);
      const float prob = __expf(Dot(q, k_row, d) - lse);
      const float dp = Dot(grad_out, Row<const T>(p.v, r.b, key, r.h), d);
      const float ds = prob * (dp - row_delta);
      float k[kPerLane];
      LoadLanes(k_row, d, 1.0f, k);
#pragma unroll
      for (int t = 0; t < kPerLane; ++t) grad_q[t] += ds * k[t];
    });
  }
  StoreLanes(grad_q, p.softmax_scale, d, Row<T>(bp.grad_q, r.b, r.n, r.h));
}

// One warp per key row: dK and dV over the query rows of the blocks that
// attend to its block.
template <typename T>
__global__ void GradKeyValueKernel(BackwardParams bp, BlockLists lists,
                                   const float* delta) {
  const ForwardParams& p = bp.forward;
  WarpRow r;
  if (!ThisWarpsRow(p, &r)) return;
  const int64_t d = p.head_dim;
  const int64_t bs = lists.block_size;
  float grad_k[kPerLane] = {}, grad_v[kPerLane] = {};
  if (!Padded(p, r.b, r.n)) {
    float k[kPerLane], v[kPerLane];
    LoadLanes(Row<const T>(p.k, r.b, r.n, r.h), d, p.softmax_scale, k);
    LoadLanes(Row<const T>(p.v, r.b, r.n, r.h), d, 1.0f, v);
    const int64_t j = r.n / bs;
    const int64_t list = LayoutHead(lists, r.h) * lists.num_blocks + j;
    for (int32_t e = lists.column_begin[list]; e < lists.column_begin[list + 1];
         ++e) {
      const int64_t i = lists.column_blocks[e];
      if (p.is_causal && i < j) continue;
      const int64_t begin = p.is_causal && i == j ? r.n : i * bs;
      for (int64_t query = begin; query < (i + 1) * bs; ++query) {
        const WarpRow qr{r.b, r.h, query};
        const float lse = *LsePointer(p, qr);
        if (!isfinite(lse)) continue;
        const T* q_row = Row<const T>(p.q, r.b, query, r.h);
        const T* grad_out_row = Row<const T>(bp.grad_out, r.b, query, r.h);
        const float prob = __expf(Dot(k, q_row, d) - lse);
        const float dp = Dot(v, grad_out_row, d);
        const float ds =
            prob * (dp - delta[(r.b * p.num_heads + r.h) * p.seq_len + query]);
        float q[kPerLane], grad_out[kPerLane];
        LoadLanes(q_row, d, 1.0f, q);
        LoadLanes(grad_out_row, d, 1.0f, grad_out);
#pragma unroll
        for (int t = 0; t < kPerLane; ++t) {
          grad_v[t] += prob * grad_out[t];
          grad_k[t] += ds * q[t];
        }
      }
    }
  }
  StoreLanes(grad_k, p.softmax_scale, d, Row<T>(bp.grad_k, r.b, r.n, r.h));
  StoreLanes(grad_v, 1.0f, d, Row<T>(bp.grad_v, r.b, r.n, r.h));
}

dim3 Grid(const ForwardParams& p) {
  return dim3(static_cast<unsigned>((p.seq_len + kWarps - 1) / kWarps),
              static_cast<unsigned>(p.num_heads),
              static_cast<unsigned>(p.batch));
}

// Calls f(T{}) with T the storage type of `dtype`.
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

cudaError_t BlockSparseForwardCuda(const ForwardParams& p,
                                   const BlockLists& lists,
                                   cudaStream_t stream) {
  if (p.head_dim > kBlockSparseMaxHeadDim) return cudaErrorInvalidValue;
  return WithStorageType(p.dtype, [&](auto zero) {
    using T = decltype(zero);
    ForwardKernel<T><<<Grid(p), 32 * kWarps, 0, stream>>>(p, lists);
    return cudaGetLastError();
  });
}

size_t BlockSparseBackwardWorkspaceBytes(const ForwardParams& p) {
  return static_cast<size_t>(p.batch * p.num_heads * p.seq_len) * sizeof(float);
}

cudaError_t BlockSparseBackwardCuda(const BackwardParams& bp,
                                    const BlockLists& lists, float* delta,
                                    cudaStream_t stream) {
  const ForwardParams& p = bp.forward;
  if (p.head_dim > kBlockSparseMaxHeadDim) return cudaErrorInvalidValue;
  return WithStorageType(p.dtype, [&](auto zero) {
    using T = decltype(zero);
    DeltaKernel<T><<<Grid(p), 32 * kWarps, 0, stream>>>(bp, delta);
    GradQueryKernel<T><<<Grid(p), 32 * kWarps, 0, stream>>>(bp, lists, delta);
    GradKeyValueKernel<T>
        <<<Grid(p), 32 * kWarps, 0, stream>>>(bp, lists, delta);
    return cudaGetLastError();
  });
}

}  // namespace gpu
}  // namespace kernels
}  // namespace dilated
