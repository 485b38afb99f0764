#include "attention/cuda_util.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace dilated {

absl::Status CudaStatus(cudaError_t error, absl::string_view what) {
  if (error == cudaSuccess) return absl::OkStatus();
  const std::string message =
      absl::StrCat(what, ": ", cudaGetErrorName(error), " (",
                   cudaGetErrorString(error), ")");
  switch (error) {
    case cudaErrorMemoryAllocation:
      return absl::ResourceExhaustedError(message);
    case cudaErrorInvalidConfiguration:
    case cudaErrorInvalidValue:
    case cudaErrorInvalidDevice:
      return absl::InvalidArgumentError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::Status CublasStatus(cublasStatus_t status, absl::string_view what) {
  if (status == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  const std::string message =
      absl::StrCat(what, ": cuBLAS status ", static_cast<int>(status));
  if (status == CUBLAS_STATUS_ALLOC_FAILED) {
    return absl::ResourceExhaustedError(message);
  }
  return absl::InternalError(message);
}

ScopedCudaDevice::ScopedCudaDevice(int device) {
  status_ = CudaStatus(cudaGetDevice(&previous_), "cudaGetDevice");
  if (status_.ok() && previous_ != device) {
    status_ = CudaStatus(cudaSetDevice(device),
                         absl::StrCat("cudaSetDevice(", device, ")"));
  }
}

ScopedCudaDevice::~ScopedCudaDevice() {
  if (previous_ >= 0) cudaSetDevice(previous_);
}

absl::StatusOr<CudaScratch> CudaScratch::Allocate(
    size_t bytes, cudaStream_t stream, memory::Allocator* allocator) {
  if (bytes == 0) return CudaScratch(nullptr, 0, stream, nullptr);
  if (allocator != nullptr) {
    absl::StatusOr<void*> data = allocator->Allocate(bytes, kAlignment, stream);
    if (!data.ok()) return data.status();
    return CudaScratch(*data, bytes, stream, allocator);
  }
  void* data = nullptr;
  const cudaError_t error = cudaMallocAsync(&data, bytes, stream);
  if (error != cudaSuccess) {
    cudaGetLastError();  // Clear the error so that later launches are clean.
    return absl::ResourceExhaustedError(
        absl::StrCat("cudaMallocAsync of ", bytes,
                     " bytes of scratch: ", cudaGetErrorString(error)));
  }
  return CudaScratch(data, bytes, stream, nullptr);
}

CudaScratch::CudaScratch(CudaScratch&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      bytes_(other.bytes_),
      stream_(other.stream_),
      allocator_(other.allocator_) {}

CudaScratch& CudaScratch::operator=(CudaScratch&& other) noexcept {
  if (this != &other) {
    Release();
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = other.bytes_;
    stream_ = other.stream_;
    allocator_ = other.allocator_;
  }
  return *this;
}

CudaScratch::~CudaScratch() { Release(); }

void CudaScratch::Release() {
  if (data_ == nullptr) return;
  if (allocator_ != nullptr) {
    allocator_->Deallocate(data_, bytes_, kAlignment, stream_);
  } else {
    cudaFreeAsync(data_, stream_);
  }
  data_ = nullptr;
}

}  // namespace dilated
