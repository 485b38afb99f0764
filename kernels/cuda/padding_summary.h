// File: padding_summary.h
//
// What the host needs to know of a device key_padding_mask to schedule a
// call, computed on the device so that only a few bytes per sequence cross
// to the host: for every batch entry, the first and one past the last
// unpadded position and the number of unpadded positions. When the count
// equals last - first, the unpadded positions form one interval (padding
// only at the ends of the sequence).
//
//   SummarizePadding(mask, stride_b, batch, seq_len, summary, stream);
//   cudaMemcpyAsync(host, summary, PaddingSummaryBytes(batch), ...);

#ifndef KERNELS_CUDA_PADDING_SUMMARY_H_
#define KERNELS_CUDA_PADDING_SUMMARY_H_

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace dilated {
namespace kernels {
namespace gpu {

// One batch entry's summary; begin == seq_len and end == 0 when every
// position is padding.
struct PaddingSummary {
  int64_t begin;     // First unpadded position.
  int64_t end;       // One past the last unpadded position.
  int64_t unpadded;  // Number of unpadded positions.
};

// Returns the bytes of `batch` summaries.
inline size_t PaddingSummaryBytes(int64_t batch) {
  return static_cast<size_t>(batch) * sizeof(PaddingSummary);
}

// Writes summary[b] for every b < batch from mask[b * stride_b + n] (nonzero
// = padding, n < seq_len), on `stream`.
// REQUIRES: mask and summary in device memory; seq_len < 2^62.
cudaError_t SummarizePadding(const uint8_t* mask, int64_t stride_b,
                             int64_t batch, int64_t seq_len,
                             PaddingSummary* summary, cudaStream_t stream);

}  // namespace gpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CUDA_PADDING_SUMMARY_H_
