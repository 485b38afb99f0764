// File: cuda_scratch.h
//
// CudaScratch: stream-ordered device scratch of a CUDA backend call, taken
// from the call's workspace allocator and given back to it on the same
// stream when the object dies.
//
//   DA_ASSIGN_OR_RETURN(CudaScratch scratch,
//                       CudaScratch::Allocate(bytes, stream,
//                                             context.workspace));

#ifndef ATTENTION_CUDA_SCRATCH_H_
#define ATTENTION_CUDA_SCRATCH_H_

#include <cuda_runtime_api.h>

#include <cstddef>

#include "absl/status/statusor.h"
#include "memory/allocator.h"

namespace dilated {

// Device memory from an allocator, ordered on a stream: usable by work queued
// on that stream until the object dies, then given back on that stream.
class CudaScratch {
 public:
  // Returns `bytes` of device memory from `allocator` ordered on `stream`
  // (null for 0 bytes), or the allocator's error (ResourceExhausted).
  // REQUIRES: allocator != nullptr.
  static absl::StatusOr<CudaScratch> Allocate(size_t bytes, cudaStream_t stream,
                                              memory::Allocator* allocator);

  CudaScratch(CudaScratch&& other) noexcept;
  CudaScratch& operator=(CudaScratch&& other) noexcept;
  CudaScratch(const CudaScratch&) = delete;
  CudaScratch& operator=(const CudaScratch&) = delete;
  ~CudaScratch();

  void* data() const { return data_; }

 private:
  // Device workspace alignment: what cuBLAS and vector loads want.
  static constexpr size_t kAlignment = 256;

  CudaScratch(void* data, size_t bytes, cudaStream_t stream,
              memory::Allocator* allocator)
      : data_(data), bytes_(bytes), stream_(stream), allocator_(allocator) {}
  void Release();

  void* data_ = nullptr;
  size_t bytes_ = 0;
  cudaStream_t stream_ = nullptr;
  memory::Allocator* allocator_ = nullptr;
};

}  // namespace dilated

#endif  // ATTENTION_CUDA_SCRATCH_H_
