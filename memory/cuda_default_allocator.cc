// Registers the built-in allocators of CUDA devices (see
// default_allocator.h), made on first use: the default, a pool over cudaMalloc
// per device; the stream-ordered one, a CudaAsyncAllocator; the plain one, a
// CudaAllocator.
#include <memory>
#include <utility>

#include "memory/cuda_allocator.h"
#include "memory/cuda_async_allocator.h"
#include "memory/cuda_pool.h"
#include "memory/default_allocator.h"

namespace dilated {
namespace memory {
namespace {

// Returns the allocator `make(device)` gives, as an Allocator.
template <typename Make>
DefaultAllocatorFactory Factory(Make make) {
  return [make](int device) -> absl::StatusOr<std::unique_ptr<Allocator>> {
    auto allocator = make(device);
    if (!allocator.ok()) return allocator.status();
    return std::unique_ptr<Allocator>(std::move(*allocator));
  };
}

const bool kRegistered = RegisterBuiltinAllocators(
    DeviceType::kCuda,
    BuiltinAllocatorFactories{
        Factory([](int device) { return MakeCudaPoolAllocator(device); }),
        Factory([](int device) { return CudaAsyncAllocator::Create(device); }),
        Factory([](int device) { return CudaAllocator::Create(device); })});

}  // namespace
}  // namespace memory
}  // namespace dilated
