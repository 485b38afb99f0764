// The kernels of the unfused CUDA path; see standard_kernels.h.

#include <cuda_runtime.h>

#include "kernels/cuda/device_primitives.cuh"
#include "kernels/cuda/standard_kernels.h"
#include "kernels/dropout_rng.h"

namespace dilated {
namespace kernels {
namespace gpu {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ void StoreElement(float x, float* dst) { *dst = x; }
__device__ __forceinline__ void StoreElement(float x, __half* dst) {
  *dst = __float2half_rn(x);
}
__device__ __forceinline__ void StoreElement(float x, __nv_bfloat16* dst) {
  *dst = __float2bfloat16_rn(x);
}

// Where problem x of group g lives: head, batch entry, rows.
struct Located {
  int64_t head;
  int64_t batch;
  int64_t row_base;
  int64_t first;
  int64_t length;
  const int32_t* rows;

  // Returns the row (on the tensors' row axis) of problem row j.
  __device__ __forceinline__ int64_t Row(const GroupParams& g,
                                         int64_t j) const {
    return row_base + (rows != nullptr ? rows[j] : first + j * g.dilation_rate);
  }

  // Returns the dropout factor of problem rows i (query) and j (key): their
  // positions in the sequence `batch`.
  __device__ __forceinline__ float DropoutFactorOf(const ForwardParams& p,
                                                   const GroupParams& g,
                                                   int64_t i, int64_t j) const {
    return DropoutFactor(p.dropout, batch, p.num_heads, head,
                         Row(g, i) - row_base, Row(g, j) - row_base);
  }
};

__device__ __forceinline__ Located Locate(const ForwardParams& p,
                                          const GroupParams& g,
                                          const StandardProblem* problems,
                                          int64_t x) {
  Located at;
  at.head = g.head_begin + x % g.num_heads;
  const int64_t sequence = x / g.num_heads;
  if (problems != nullptr) {
    const StandardProblem& problem = problems[sequence];
    at.batch = problem.batch;
    at.row_base = problem.row_base;
    at.first = problem.first;
    at.length = problem.length;
    at.rows = problem.rows;
    return at;
  }
  const int64_t segments = p.seq_len / g.segment_length;
  at.batch = sequence / segments;
  at.row_base = 0;
  at.first = (sequence % segments) * g.segment_length + g.offset;
  at.length = g.positions;
  at.rows = nullptr;
  return at;
}

// Returns the element offset of row j of a located problem in t.
__device__ __forceinline__ int64_t RowOffset(const GroupParams& g,
                                             const TensorParams& t,
                                             const Located& at, int64_t j) {
  return at.batch * t.stride_b + at.Row(g, j) * t.stride_n +
         at.head * t.stride_h;
}

template <typename T>
__global__ void ZeroKernel(const __grid_constant__ ForwardParams p,
                           TensorParams t) {
  const int64_t total = StorageBatch(p) * p.seq_len * p.num_heads * p.head_dim;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
       i < total; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t rest = i;
    const int64_t d = rest % p.head_dim;
    rest /= p.head_dim;
    const int64_t h = rest % p.num_heads;
    rest /= p.num_heads;
    const int64_t n = rest % p.seq_len;
    const int64_t b = rest / p.seq_len;
    StoreElement(0.0f, static_cast<T*>(t.data) + b * t.stride_b +
                           n * t.stride_n + h * t.stride_h + d);
  }
}

__global__ void FillLseKernel(const __grid_constant__ ForwardParams p) {
  const int64_t total = StorageBatch(p) * p.num_heads * p.seq_len;
  const float minus_inf = -__int_as_float(0x7f800000);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
       i < total; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t n = i % p.seq_len;
    const int64_t h = (i / p.seq_len) % p.num_heads;
    const int64_t b = i / (p.seq_len * p.num_heads);
    p.lse[b * p.lse_stride_b + h * p.lse_stride_h + n] = minus_inf;
  }
}

template <typename T>
__global__ void GatherKernel(const __grid_constant__ ForwardParams p,
                             TensorParams t, int group,
                             const StandardProblem* problems, int64_t first,
                             int64_t count, T* dense) {
  const GroupParams& g = p.groups[group];
  const int64_t total = count * g.positions * p.head_dim;
  const T* src = static_cast<const T*>(t.data);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
       i < total; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t d = i % p.head_dim;
    const int64_t j = (i / p.head_dim) % g.positions;
    const Located at =
        Locate(p, g, problems, first + i / (p.head_dim * g.positions));
    if (j < at.length) {
      dense[i] = src[RowOffset(g, t, at, j) + d];
    } else {
      StoreElement(0.0f, dense + i);
    }
  }
}

template <typename T>
__global__ void ScatterKernel(const __grid_constant__ ForwardParams p,
                              const float* dense, float scale, int group,
                              const StandardProblem* problems, int64_t first,
                              int64_t count, TensorParams t) {
  const GroupParams& g = p.groups[group];
  const int64_t total = count * g.positions * p.head_dim;
  T* dst = static_cast<T*>(t.data);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
       i < total; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t d = i % p.head_dim;
    const int64_t j = (i / p.head_dim) % g.positions;
    const Located at =
        Locate(p, g, problems, first + i / (p.head_dim * g.positions));
    if (j < at.length) {
      StoreElement(scale * dense[i], dst + RowOffset(g, t, at, j) + d);
    }
  }
}

// Returns the sum (kSum) or maximum of `x` over the block.
template <bool kSum>
__device__ float BlockReduce(float x, float* scratch) {
#pragma unroll
  for (int d = 16; d > 0; d /= 2) {
    const float y = __shfl_xor_sync(0xffffffffu, x, d);
    x = kSum ? x + y : fmaxf(x, y);
  }
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  __syncthreads();  // scratch may still be read by a previous reduction
  if (lane == 0) scratch[warp] = x;
  __syncthreads();
  x = scratch[0];
  for (int w = 1; w < static_cast<int>(blockDim.x / 32); ++w) {
    x = kSum ? x + scratch[w] : fmaxf(x, scratch[w]);
  }
  return x;
}

// One block per row of the scores.
template <typename T>
__global__ void SoftmaxKernel(const __grid_constant__ ForwardParams p,
                              int group, const StandardProblem* problems,
                              int64_t first, float* scores, T* probs) {
  __shared__ float scratch[kThreads / 32];
  const GroupParams& g = p.groups[group];
  const int64_t length = g.positions;
  const int64_t row = blockIdx.x;  // within the chunk
  const int64_t i = row % length;  // query index
  const Located at = Locate(p, g, problems, first + row / length);
  float* s = scores + row * length;
  T* out = probs + row * length;
  if (i >= at.length) {
    // A row past the problem's length: no probabilities, no lse.
    for (int64_t j = threadIdx.x; j < length; j += blockDim.x) {
      s[j] = 0.0f;
      StoreElement(0.0f, out + j);
    }
    return;
  }
  const int64_t allowed = p.is_causal ? i + 1 : at.length;
  const float minus_inf = -__int_as_float(0x7f800000);
  float m = minus_inf;
  for (int64_t j = threadIdx.x; j < allowed; j += blockDim.x) {
    m = fmaxf(m, s[j]);
  }
  m = BlockReduce<false>(m, scratch);
  float sum = 0.0f;
  for (int64_t j = threadIdx.x; j < allowed; j += blockDim.x) {
    sum += expf(s[j] - m);
  }
  sum = BlockReduce<true>(sum, scratch);
  const float inverse = 1.0f / sum;
  for (int64_t j = threadIdx.x; j < length; j += blockDim.x) {
    const float prob = j < allowed ? expf(s[j] - m) * inverse : 0.0f;
    s[j] = prob;
    const bool dropped = p.dropout.enabled && j < allowed;
    StoreElement(dropped ? prob * at.DropoutFactorOf(p, g, i, j) : prob,
                 out + j);
  }
  if (p.lse != nullptr && threadIdx.x == 0) {
    p.lse[at.batch * p.lse_stride_b + at.head * p.lse_stride_h + at.Row(g, i)] =
        m + logf(sum);
  }
}

template <typename T>
__global__ void SoftmaxBackwardKernel(const __grid_constant__ ForwardParams p,
                                      int group,
                                      const StandardProblem* problems,
                                      int64_t first, const float* probs,
                                      const float* grad_probs, T* grad_scores) {
  __shared__ float scratch[kThreads / 32];
  const GroupParams& g = p.groups[group];
  const int64_t length = g.positions;
  const int64_t row = blockIdx.x;
  const int64_t i = row % length;
  const float* pr = probs + row * length;
  const float* dp = grad_probs + row * length;
  T* ds = grad_scores + row * length;
  // Without dropout the factors are 1 and the locating is skipped.
  Located at{};
  bool dropout = false;
  if (p.dropout.enabled) {
    at = Locate(p, g, problems, first + row / length);
    dropout = i < at.length;
  }
  auto grad = [&](int64_t j) {
    // Probabilities are 0 past the row's keys; their factors are not drawn.
    return dropout && pr[j] != 0.0f ? dp[j] * at.DropoutFactorOf(p, g, i, j)
                                    : dp[j];
  };
  float dot = 0.0f;
  for (int64_t j = threadIdx.x; j < length; j += blockDim.x) {
    dot += pr[j] * grad(j);
  }
  dot = BlockReduce<true>(dot, scratch);
  for (int64_t j = threadIdx.x; j < length; j += blockDim.x) {
    StoreElement(pr[j] * (grad(j) - dot), ds + j);
  }
}

// Returns a grid size for a grid-stride loop over `total` items.
unsigned GridFor(int64_t total) {
  const int64_t blocks = (total + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 65536 ? (blocks > 0 ? blocks : 1)
                                              : 65536);
}

// Calls f(T{}) with T the storage type of `dtype`.
template <class F>
cudaError_t WithType(DataType dtype, F f) {
  switch (dtype) {
    case DataType::kFloat32:
    default:  // int32 and bool tensors never reach a float conversion
      f(float{});
      break;
    case DataType::kFloat16:
      f(__half{});
      break;
    case DataType::kBFloat16:
      f(__nv_bfloat16{});
      break;
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t StandardZero(const ForwardParams& p, const TensorParams& t,
                         cudaStream_t stream) {
  const int64_t total = StorageBatch(p) * p.seq_len * p.num_heads * p.head_dim;
  return WithType(p.dtype, [&](auto tag) {
    using T = decltype(tag);
    ZeroKernel<T><<<GridFor(total), kThreads, 0, stream>>>(p, t);
  });
}

cudaError_t StandardFillLse(const ForwardParams& p, cudaStream_t stream) {
  if (p.lse == nullptr) return cudaSuccess;
  FillLseKernel<<<GridFor(StorageBatch(p) * p.num_heads * p.seq_len), kThreads,
                  0, stream>>>(p);
  return cudaGetLastError();
}

cudaError_t StandardGather(const ForwardParams& p, const TensorParams& t,
                           int group, const StandardProblem* problems,
                           int64_t first, int64_t count, void* dense,
                           cudaStream_t stream) {
  const int64_t total = count * p.groups[group].positions * p.head_dim;
  return WithType(p.dtype, [&](auto tag) {
    using T = decltype(tag);
    GatherKernel<T><<<GridFor(total), kThreads, 0, stream>>>(
        p, t, group, problems, first, count, static_cast<T*>(dense));
  });
}

cudaError_t StandardScatter(const ForwardParams& p, const float* dense,
                            float scale, int group,
                            const StandardProblem* problems, int64_t first,
                            int64_t count, const TensorParams& t,
                            cudaStream_t stream) {
  const int64_t total = count * p.groups[group].positions * p.head_dim;
  return WithType(p.dtype, [&](auto tag) {
    using T = decltype(tag);
    ScatterKernel<T><<<GridFor(total), kThreads, 0, stream>>>(
        p, dense, scale, group, problems, first, count, t);
  });
}

cudaError_t StandardSoftmax(const ForwardParams& p, int group,
                            const StandardProblem* problems, int64_t first,
                            int64_t count, float* scores, void* probs,
                            cudaStream_t stream) {
  const int64_t rows = count * p.groups[group].positions;
  if (rows > 0x7fffffff) return cudaErrorInvalidConfiguration;
  return WithType(p.dtype, [&](auto tag) {
    using T = decltype(tag);
    SoftmaxKernel<T><<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
        p, group, problems, first, scores, static_cast<T*>(probs));
  });
}

cudaError_t StandardSoftmaxBackward(const ForwardParams& p, int group,
                                    const StandardProblem* problems,
                                    int64_t first, int64_t count,
                                    const float* probs, const float* grad_probs,
                                    void* grad_scores, cudaStream_t stream) {
  const int64_t rows = count * p.groups[group].positions;
  if (rows > 0x7fffffff) return cudaErrorInvalidConfiguration;
  return WithType(p.dtype, [&](auto tag) {
    using T = decltype(tag);
    SoftmaxBackwardKernel<T>
        <<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
            p, group, problems, first, probs, grad_probs,
            static_cast<T*>(grad_scores));
  });
}

}  // namespace gpu
}  // namespace kernels
}  // namespace dilated
