#include "attention/cuda_scratch.h"

#include <utility>

#include "factory/status_macros.h"

namespace dilated {

absl::StatusOr<CudaScratch> CudaScratch::Allocate(
    size_t bytes, cudaStream_t stream, memory::Allocator* allocator) {
  if (bytes == 0) return CudaScratch(nullptr, 0, stream, nullptr);
  DA_CHECK(allocator != nullptr, "CudaScratch needs a workspace allocator");
  absl::StatusOr<void*> data = allocator->Allocate(bytes, kAlignment, stream);
  if (!data.ok()) return data.status();
  return CudaScratch(*data, bytes, stream, allocator);
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
  allocator_->Deallocate(data_, bytes_, kAlignment, stream_);
  data_ = nullptr;
}

}  // namespace dilated
