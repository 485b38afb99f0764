// Registers the built-in default allocator of CUDA devices (see
// default_allocator.h): a pool over cudaMalloc per device, made on first use.
#include <memory>
#include <utility>

#include "memory/cuda_pool.h"
#include "memory/default_allocator.h"

namespace dilated {
namespace memory {
namespace {

const bool kRegistered = RegisterBuiltinDefaultAllocator(
    MemoryKind::kCudaDevice,
    [](int device) -> absl::StatusOr<std::unique_ptr<Allocator>> {
      absl::StatusOr<std::unique_ptr<PoolAllocator>> allocator =
          MakeCudaPoolAllocator(device);
      if (!allocator.ok()) return allocator.status();
      return std::unique_ptr<Allocator>(std::move(*allocator));
    });

}  // namespace
}  // namespace memory
}  // namespace dilated
