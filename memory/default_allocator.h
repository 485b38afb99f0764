// File: default_allocator.h
//
// The allocator used for a memory space when a caller names none. There is
// one slot per space (host, cuda:0, cuda:1, ...), and no slot is configured
// by whoever happens to call first: each holds either the allocator that
// SetDefaultAllocator installed or the built-in default, whose type is fixed
// and documented here:
// - host: a HostAllocator (direct allocation). The pool is opt-in on the
//   host: below 4 KiB it costs more than malloc (docs/PERFORMANCE_MEMORY.md).
// - cuda:d: a PoolAllocator over cudaMalloc on device d with a
//   CudaStreamOrdering (MakeCudaPoolAllocator), made on first use if
//   //memory:cuda_default_allocator is linked; without it,
//   FailedPrecondition. A pair costs tens of nanoseconds where cudaMalloc +
//   cudaFree cost tens of microseconds and synchronise the device.
// Built-in defaults live until the process exits.
//
// Besides the default, every space has two built-in direct allocators for
// code that must not pool (they are how the library allocates device memory
// without a pool; nothing outside memory/ calls cudaMalloc):
// - StreamOrderedAllocator: host: the HostAllocator; cuda:d: a
//   CudaAsyncAllocator (cudaMallocFromPoolAsync / cudaFreeAsync on the
//   caller's stream).
// - PlainAllocator: host: the HostAllocator; cuda:d: a CudaAllocator
//   (cudaMalloc, usable from every stream).
//
//   absl::StatusOr<Allocator*> host = DefaultAllocator(Device::Cpu());
//   PoolAllocator pool(*host);
//   Allocator* previous = SetDefaultAllocator(Device::Cpu(), &pool);
//   ...                                        // code that uses the default
//   SetDefaultAllocator(Device::Cpu(), previous);  // before pool dies

#ifndef MEMORY_DEFAULT_ALLOCATOR_H_
#define MEMORY_DEFAULT_ALLOCATOR_H_

#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "memory/allocator.h"

namespace dilated {
namespace memory {

// Returns the default allocator of `space` (see the file comment), or
// FailedPrecondition when there is none for it.
absl::StatusOr<Allocator*> DefaultAllocator(const MemorySpace& space);

// Installs `allocator` as the default of `space` and returns the allocator
// installed before (nullptr if the built-in was in effect). nullptr restores
// the built-in.
// REQUIRES: `allocator` outlives its use as the default, and
// allocator->space() == space; otherwise the process aborts.
Allocator* SetDefaultAllocator(const MemorySpace& space, Allocator* allocator);

// Returns the stream-ordered direct allocator of `space` (see the file
// comment), made on first use, or FailedPrecondition when there is none.
absl::StatusOr<Allocator*> StreamOrderedAllocator(const MemorySpace& space);

// Returns the plain direct allocator of `space` (see the file comment), made
// on first use, or FailedPrecondition when there is none.
absl::StatusOr<Allocator*> PlainAllocator(const MemorySpace& space);

// Makes a built-in allocator of a device type. Registered by the library
// that implements the type (e.g. //memory:cuda_default_allocator).
using DefaultAllocatorFactory =
    std::function<absl::StatusOr<std::unique_ptr<Allocator>>(int device)>;

// The built-in allocators of a device type.
struct BuiltinAllocatorFactories {
  DefaultAllocatorFactory default_allocator;
  DefaultAllocatorFactory stream_ordered;
  DefaultAllocatorFactory plain;
};

// Registers the built-in factories of `type`; returns true so that it can
// initialise a static. REQUIRES: called once per type, for a device type.
bool RegisterBuiltinAllocators(DeviceType type,
                               BuiltinAllocatorFactories factories);

}  // namespace memory
}  // namespace dilated

#endif  // MEMORY_DEFAULT_ALLOCATOR_H_
