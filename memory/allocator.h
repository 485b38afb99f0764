// File: allocator.h
//
// Allocator: the one memory interface of the library. Direct allocators (host,
// cudaMalloc, cudaMallocAsync), the pooled allocator and the tracking adaptor
// all derive from it, so code that needs memory takes an `Allocator&` and
// does not care which one it got.
//
//   dilated::memory::HostAllocator host;
//   absl::StatusOr<void*> p = host.Allocate(4096);  // 64-byte aligned
//   if (!p.ok()) return p.status();                 // ResourceExhausted
//   ...
//   host.Deallocate(*p, 4096);
//
// The public methods are non-virtual (NVI, like RMM's device_memory_resource):
// they check the arguments once, here, and call the private virtual
// DoAllocate/DoDeallocate of the implementation.
//
// Contract shared by every implementation:
// - Allocate(bytes, alignment, stream) returns a block of at least `bytes`
//   bytes aligned to `alignment`, or ResourceExhausted. `alignment` must be a
//   power of two no larger than max_alignment() (else InvalidArgument).
// - Allocate(0, ...) returns nullptr and touches nothing; Deallocate(nullptr,
//   ...) does nothing.
// - Deallocate(ptr, bytes, alignment, stream) takes the `bytes` and
//   `alignment` given to Allocate. A pointer that is not live in this
//   allocator (a double free, a pointer from elsewhere, an interior pointer) or
//   a size that does not match is a programming error: the process aborts
//   with a message that names the allocator, the pointer and the size. It
//   never corrupts the allocator's state.
// - Device allocators are stream-ordered: a block allocated on `stream` may be
//   used by work on `stream` at once; Deallocate on `stream` means that every
//   use of the block was submitted to `stream` (or ordered before it). Host
//   allocators ignore the stream.
// - Every implementation is thread-safe.

#ifndef MEMORY_ALLOCATOR_H_
#define MEMORY_ALLOCATOR_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/base/optimization.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/device.h"

namespace dilated {
namespace memory {

// Where the memory of an allocator lives: the host (Device::Cpu()) or a
// CUDA device.
using MemorySpace = Device;

// An opaque stream: a cudaStream_t for device allocators (nullptr is CUDA's
// default stream), ignored by host allocators. No CUDA type crosses this
// header.
using StreamHandle = void*;
inline constexpr StreamHandle kDefaultStream = nullptr;

// 64 bytes: one cache line, and enough for every SIMD load of the CPU kernels.
inline constexpr size_t kDefaultAlignment = 64;

// Requests above 2^48 bytes (256 TiB) are ResourceExhausted before any
// implementation sees them, so that size arithmetic cannot overflow.
inline constexpr size_t kMaxAllocationBytes = size_t{1} << 48;

// Counters of one allocator. All byte counts are in bytes.
struct AllocatorStats {
  // Bytes requested by the live allocations.
  int64_t bytes_in_use = 0;
  // The largest bytes_in_use so far. Exact for the direct allocators and the
  // tracking adaptor; PoolAllocator documents its own bound.
  int64_t peak_bytes_in_use = 0;
  // Bytes this allocator holds from the layer below it: the upstream
  // allocator for a pool, the system or the driver for a direct allocator.
  int64_t bytes_reserved = 0;
  // The largest bytes_reserved so far.
  int64_t peak_bytes_reserved = 0;
  // Successful non-empty allocations and deallocations so far.
  int64_t allocation_count = 0;
  int64_t deallocation_count = 0;
  // Pools only: allocations served from memory already reserved (hits) and
  // allocations that had to reserve more from the upstream (misses).
  int64_t pool_hits = 0;
  int64_t pool_misses = 0;

  // Returns the number of live allocations.
  int64_t live_allocations() const {
    return allocation_count - deallocation_count;
  }
};

// Returns the statistics as "in_use=... peak_in_use=... reserved=...".
std::string StatsToString(const AllocatorStats& stats);

class Allocator {
 public:
  Allocator(const Allocator&) = delete;
  Allocator& operator=(const Allocator&) = delete;
  virtual ~Allocator() = default;

  // Returns a block of at least `bytes` bytes aligned to `alignment`, nullptr
  // for zero bytes, InvalidArgument for a bad alignment, or ResourceExhausted.
  absl::StatusOr<void*> Allocate(size_t bytes,
                                 size_t alignment = kDefaultAlignment,
                                 StreamHandle stream = kDefaultStream) {
    if (ABSL_PREDICT_FALSE(!IsPowerOfTwo(alignment) ||
                           alignment > max_alignment_)) {
      return BadAlignment(bytes, alignment);
    }
    if (ABSL_PREDICT_FALSE(bytes == 0)) return nullptr;
    if (ABSL_PREDICT_FALSE(bytes > kMaxAllocationBytes)) {
      return TooLarge(bytes);
    }
    return DoAllocate(bytes, alignment, stream);
  }

  // Returns `ptr` (from Allocate(bytes, alignment, ...)) to this allocator.
  // REQUIRES: `ptr` is live in this allocator and `bytes`/`alignment` are the
  // values it was allocated with; otherwise the process aborts.
  void Deallocate(void* ptr, size_t bytes, size_t alignment = kDefaultAlignment,
                  StreamHandle stream = kDefaultStream) noexcept {
    if (ptr == nullptr) return;
    DoDeallocate(ptr, bytes, alignment, stream);
  }

  // Returns cached memory to the layer below and returns how many bytes were
  // returned. Direct allocators cache nothing and return 0.
  size_t ReleaseCached() { return DoReleaseCached(); }

  // Returns a snapshot of the counters (see AllocatorStats).
  AllocatorStats GetStats() const { return DoGetStats(); }

  // Returns where the memory lives.
  const MemorySpace& space() const { return space_; }

  // Returns the largest alignment Allocate accepts.
  size_t max_alignment() const { return max_alignment_; }

  // Returns a short name for messages, e.g. "host" or "pool(cuda:0)".
  const std::string& name() const { return name_; }

 protected:
  Allocator(MemorySpace space, size_t max_alignment, std::string name);

 private:
  static bool IsPowerOfTwo(size_t x) { return x != 0 && (x & (x - 1)) == 0; }
  absl::Status BadAlignment(size_t bytes, size_t alignment) const;
  absl::Status TooLarge(size_t bytes) const;

  // REQUIRES: bytes > 0, bytes <= kMaxAllocationBytes, alignment a power of
  // two <= max_alignment().
  virtual absl::StatusOr<void*> DoAllocate(size_t bytes, size_t alignment,
                                           StreamHandle stream) = 0;
  // REQUIRES: ptr != nullptr.
  virtual void DoDeallocate(void* ptr, size_t bytes, size_t alignment,
                            StreamHandle stream) noexcept = 0;
  virtual size_t DoReleaseCached() { return 0; }
  virtual AllocatorStats DoGetStats() const = 0;

  const MemorySpace space_;
  const size_t max_alignment_;
  const std::string name_;
};

}  // namespace memory
}  // namespace dilated

#endif  // MEMORY_ALLOCATOR_H_
