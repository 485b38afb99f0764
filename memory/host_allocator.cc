#include "memory/host_allocator.h"

#include <cstdlib>

#include "absl/strings/str_format.h"

namespace dilated {
namespace memory {

HostAllocator::HostAllocator()
    : Allocator(Device::Cpu(), kMaxAlignment, "host") {}

absl::StatusOr<void*> HostAllocator::DoAllocate(size_t bytes, size_t alignment,
                                                StreamHandle /*stream*/) {
  // posix_memalign needs at least pointer alignment.
  const size_t effective =
      alignment < sizeof(void*) ? sizeof(void*) : alignment;
  void* ptr = nullptr;
  if (posix_memalign(&ptr, effective, bytes) != 0 || ptr == nullptr) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "host: cannot allocate %d bytes aligned to %d", bytes, alignment));
  }
  live_.Insert(ptr, bytes, name());
  stats_.OnAllocate(static_cast<int64_t>(bytes));
  return ptr;
}

void HostAllocator::DoDeallocate(void* ptr, size_t bytes, size_t /*alignment*/,
                                 StreamHandle /*stream*/) noexcept {
  live_.EraseOrDie(ptr, bytes, name());
  stats_.OnDeallocate(static_cast<int64_t>(bytes));
  std::free(ptr);
}

}  // namespace memory
}  // namespace dilated
