// File: cuda_pool.h
//
// MakeCudaPoolAllocator: the pooled device allocator, a PoolAllocator over a
// CudaAllocator (cudaMalloc) with a CudaStreamOrdering, so that a block
// freed on one stream is handed to another only behind an event.
//
//   absl::StatusOr<std::unique_ptr<PoolAllocator>> pool =
//       MakeCudaPoolAllocator(/*device=*/0);
//   absl::StatusOr<void*> p = (*pool)->Allocate(16 << 20, 256, stream);
//   (*pool)->Deallocate(*p, 16 << 20, 256, stream);  // cached for reuse

#ifndef MEMORY_CUDA_POOL_H_
#define MEMORY_CUDA_POOL_H_

#include <memory>

#include "absl/status/statusor.h"
#include "memory/pool_allocator.h"

namespace dilated {
namespace memory {

// Returns a pool over cudaMalloc on `device`. `options.stream_ordering`, if
// unset, becomes a CudaStreamOrdering of the device.
absl::StatusOr<std::unique_ptr<PoolAllocator>> MakeCudaPoolAllocator(
    int device, PoolOptions options = {});

}  // namespace memory
}  // namespace dilated

#endif  // MEMORY_CUDA_POOL_H_
