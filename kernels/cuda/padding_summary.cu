#include "kernels/cuda/padding_summary.h"

namespace dilated {
namespace kernels {
namespace gpu {
namespace {

constexpr int kThreads = 512;

// One block per batch entry: each thread scans a strided share of the row,
// then the block reduces through shared-memory atomics.
__global__ void __launch_bounds__(kThreads)
    SummarizePaddingKernel(const uint8_t* mask, int64_t stride_b,
                           int64_t seq_len, PaddingSummary* summary) {
  __shared__ unsigned long long first;
  __shared__ unsigned long long last;
  __shared__ unsigned long long count;
  if (threadIdx.x == 0) {
    first = static_cast<unsigned long long>(seq_len);
    last = 0;
    count = 0;
  }
  __syncthreads();
  const uint8_t* row = mask + blockIdx.x * stride_b;
  unsigned long long my_first = static_cast<unsigned long long>(seq_len);
  unsigned long long my_last = 0;
  unsigned long long my_count = 0;
  for (int64_t n = threadIdx.x; n < seq_len; n += kThreads) {
    if (row[n] == 0) {
      const auto position = static_cast<unsigned long long>(n);
      my_first = my_first < position ? my_first : position;
      my_last = position + 1;
      ++my_count;
    }
  }
  if (my_count > 0) {
    atomicMin(&first, my_first);
    atomicMax(&last, my_last);
    atomicAdd(&count, my_count);
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    summary[blockIdx.x] =
        PaddingSummary{static_cast<int64_t>(first), static_cast<int64_t>(last),
                       static_cast<int64_t>(count)};
  }
}

}  // namespace

cudaError_t SummarizePadding(const uint8_t* mask, int64_t stride_b,
                             int64_t batch, int64_t seq_len,
                             PaddingSummary* summary, cudaStream_t stream) {
  if (batch == 0) return cudaSuccess;
  SummarizePaddingKernel<<<static_cast<unsigned>(batch), kThreads, 0, stream>>>(
      mask, stride_b, seq_len, summary);
  return cudaGetLastError();
}

}  // namespace gpu
}  // namespace kernels
}  // namespace dilated
