#include "python/ops/torch_allocator.h"

#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>
#include <torch/headeronly/core/ScalarType.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "base/device.h"
#include "memory/allocator.h"

namespace dilated {
namespace torch_ops {
namespace {

Device DeviceOf(const torch::stable::Tensor& tensor) {
  return tensor.is_cuda() ? Device::Cuda(tensor.get_device_index())
                          : Device::Cpu();
}

}  // namespace

TorchAllocator::TorchAllocator(const torch::stable::Tensor& like)
    : memory::Allocator(DeviceOf(like), kMaxAlignment, "torch"), like_(like) {}

TorchAllocator::~TorchAllocator() = default;

absl::StatusOr<void*> TorchAllocator::DoAllocate(
    size_t bytes, size_t alignment, memory::StreamHandle /*stream*/) {
  const int64_t padded = static_cast<int64_t>(bytes + alignment - 1);
  torch::stable::Tensor block;
  try {
    block = torch::stable::new_empty(like_, std::vector<int64_t>{padded},
                                     torch::headeronly::ScalarType::Byte);
  } catch (const std::exception& error) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "torch could not allocate ", bytes, " bytes of workspace on ",
        DeviceName(space()), ": ", error.what()));
  }
  const uintptr_t address = reinterpret_cast<uintptr_t>(block.data_ptr());
  void* aligned = reinterpret_cast<void*>((address + alignment - 1) &
                                          ~(uintptr_t{alignment} - 1));
  absl::MutexLock lock(&mutex_);
  blocks_.emplace(aligned, std::move(block));
  stats_.bytes_in_use += static_cast<int64_t>(bytes);
  stats_.bytes_reserved += padded;
  stats_.peak_bytes_in_use =
      std::max(stats_.peak_bytes_in_use, stats_.bytes_in_use);
  stats_.peak_bytes_reserved =
      std::max(stats_.peak_bytes_reserved, stats_.bytes_reserved);
  ++stats_.allocation_count;
  return aligned;
}

void TorchAllocator::DoDeallocate(void* ptr, size_t bytes, size_t alignment,
                                  memory::StreamHandle /*stream*/) noexcept {
  absl::MutexLock lock(&mutex_);
  auto block = blocks_.find(ptr);
  if (block == blocks_.end()) {
    std::fprintf(stderr,
                 "TorchAllocator: Deallocate(%p, %zu) of a pointer that is "
                 "not live\n",
                 ptr, bytes);
    std::abort();
  }
  blocks_.erase(block);
  stats_.bytes_in_use -= static_cast<int64_t>(bytes);
  stats_.bytes_reserved -= static_cast<int64_t>(bytes + alignment - 1);
  ++stats_.deallocation_count;
}

memory::AllocatorStats TorchAllocator::DoGetStats() const {
  absl::MutexLock lock(&mutex_);
  return stats_;
}

}  // namespace torch_ops
}  // namespace dilated
