// File: cuda_util.h
//
// Host helpers shared by the CUDA backends: cudaError_t and cublasStatus_t
// to absl::Status, a scoped device switch, and stream-ordered scratch
// memory.
//
//   ScopedCudaDevice device(context.device.index);
//   DA_RETURN_IF_ERROR(device.status());
//   DA_ASSIGN_OR_RETURN(CudaScratch scratch,
//                       CudaScratch::Allocate(bytes, stream));

#ifndef ATTENTION_CUDA_UTIL_H_
#define ATTENTION_CUDA_UTIL_H_

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstddef>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "memory/allocator.h"

namespace dilated {

// Returns OK for cudaSuccess; ResourceExhausted for an allocation failure,
// InvalidArgument for a launch the device cannot run, Internal otherwise;
// the message names `what` and the CUDA error.
absl::Status CudaStatus(cudaError_t error, absl::string_view what);

// Returns OK for CUBLAS_STATUS_SUCCESS, Internal (ResourceExhausted for
// allocation failures) naming `what` otherwise.
absl::Status CublasStatus(cublasStatus_t status, absl::string_view what);

// Makes `device` current for the lifetime of the object and restores the
// previous device afterwards.
class ScopedCudaDevice {
 public:
  explicit ScopedCudaDevice(int device);
  ~ScopedCudaDevice();
  ScopedCudaDevice(const ScopedCudaDevice&) = delete;
  ScopedCudaDevice& operator=(const ScopedCudaDevice&) = delete;

  // Returns whether switching succeeded.
  const absl::Status& status() const { return status_; }

 private:
  int previous_ = -1;
  absl::Status status_;
};

// Device memory taken with cudaMallocAsync on a stream and given back with
// cudaFreeAsync on the same stream when the object dies: usable by work
// queued on that stream in between, no device synchronisation.
class CudaScratch {
 public:
  // Returns `bytes` of device memory ordered on `stream` (null for 0 bytes),
  // or ResourceExhausted. The memory comes from `allocator` when it is not
  // null (and goes back to it, on `stream`), else from cudaMallocAsync.
  static absl::StatusOr<CudaScratch> Allocate(
      size_t bytes, cudaStream_t stream,
      memory::Allocator* allocator = nullptr);

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

#endif  // ATTENTION_CUDA_UTIL_H_
