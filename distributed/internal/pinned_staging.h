// File: pinned_staging.h
//
// PinnedStaging: a cache of page-locked host buffers through which the MPI
// engine stages device data. A buffer is leased for one operation and goes
// back to the cache when the lease ends; the cache keeps its buffers (so a
// steady sequence of operations allocates once) and replaces its largest one
// by a bigger one when no cached buffer is big enough. Not thread-safe.

#ifndef DISTRIBUTED_INTERNAL_PINNED_STAGING_H_
#define DISTRIBUTED_INTERNAL_PINNED_STAGING_H_

#include <cstddef>
#include <vector>

#include "absl/status/statusor.h"

namespace dilated {
namespace distributed {
namespace internal {

class PinnedStaging {
 public:
  // A buffer of at least the asked size, returned to the cache on
  // destruction. Must not outlive its PinnedStaging.
  class Lease {
   public:
    Lease() = default;
    Lease(Lease&& other) noexcept { *this = std::move(other); }
    Lease& operator=(Lease&& other) noexcept;
    ~Lease() { Return(); }

    char* data() const { return static_cast<char*>(data_); }

    // Gives the buffer up for good, never to be reused or freed: for memory
    // that an operation which cannot be waited for may still write.
    void Abandon();

   private:
    friend class PinnedStaging;
    void Return();

    PinnedStaging* owner_ = nullptr;
    void* data_ = nullptr;
    size_t bytes_ = 0;
  };

  PinnedStaging() = default;
  PinnedStaging(const PinnedStaging&) = delete;
  PinnedStaging& operator=(const PinnedStaging&) = delete;
  ~PinnedStaging();

  // Returns a buffer of at least `bytes` bytes; FailedPrecondition in a
  // build without CUDA, ResourceExhausted if pinned memory runs out.
  absl::StatusOr<Lease> Acquire(size_t bytes);

 private:
  struct Block {
    void* data;
    size_t bytes;
  };
  std::vector<Block> free_;
};

}  // namespace internal
}  // namespace distributed
}  // namespace dilated

#endif  // DISTRIBUTED_INTERNAL_PINNED_STAGING_H_
