#include "memory/cuda_pool.h"

#include <utility>

#include "memory/cuda_allocator.h"
#include "memory/cuda_stream_ordering.h"

namespace dilated {
namespace memory {

absl::StatusOr<std::unique_ptr<PoolAllocator>> MakeCudaPoolAllocator(
    int device, PoolOptions options) {
  absl::StatusOr<std::unique_ptr<CudaAllocator>> upstream =
      CudaAllocator::Create(device);
  if (!upstream.ok()) return upstream.status();
  if (options.stream_ordering == nullptr) {
    absl::StatusOr<std::unique_ptr<CudaStreamOrdering>> ordering =
        CudaStreamOrdering::Create(device);
    if (!ordering.ok()) return ordering.status();
    options.stream_ordering = std::move(*ordering);
  }
  return std::make_unique<PoolAllocator>(std::move(*upstream),
                                         std::move(options));
}

}  // namespace memory
}  // namespace dilated
