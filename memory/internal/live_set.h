// File: internal/live_set.h
//
// LiveSet records the live blocks of a direct allocator (pointer -> bytes) so
// that a double free, a foreign pointer or a wrong size aborts with a clear
// message instead of reaching free() or cudaFree(). It is sharded by address
// with one SpinLock per shard, so threads freeing different blocks rarely
// meet.
//
//   LiveSet live;
//   live.Insert(ptr, bytes);
//   live.EraseOrDie(ptr, bytes, "host");  // aborts if ptr is not live

#ifndef MEMORY_INTERNAL_LIVE_SET_H_
#define MEMORY_INTERNAL_LIVE_SET_H_

#include <array>
#include <cstddef>
#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "memory/internal/spin_lock.h"

namespace dilated {
namespace memory {
namespace memory_internal {

class LiveSet {
 public:
  LiveSet() = default;
  LiveSet(const LiveSet&) = delete;
  LiveSet& operator=(const LiveSet&) = delete;

  // Records `ptr` as live with `bytes`.
  // REQUIRES: `ptr` is not live (the allocator below never returns a live
  // pointer twice); otherwise aborts.
  void Insert(void* ptr, size_t bytes, absl::string_view owner);

  // Forgets `ptr`. Aborts with a message naming `owner` if `ptr` is not live
  // or was recorded with another size.
  void EraseOrDie(void* ptr, size_t bytes, absl::string_view owner);

  // Returns the number of live pointers.
  size_t size() const;

 private:
  // 64 shards: more than the cores of any host we run on, so that two threads
  // rarely hash to the same shard.
  static constexpr int kShards = 64;

  struct alignas(64) Shard {
    mutable SpinLock lock;
    absl::flat_hash_map<uintptr_t, size_t> blocks ABSL_GUARDED_BY(lock);
  };

  static int ShardOf(uintptr_t address) {
    // Fibonacci hashing of the cache-line number: neighbouring blocks land
    // in different shards.
    return static_cast<int>(((address >> 6) * 0x9E3779B97F4A7C15ull) >> 58);
  }

  std::array<Shard, kShards> shards_;
};

}  // namespace memory_internal
}  // namespace memory
}  // namespace dilated

#endif  // MEMORY_INTERNAL_LIVE_SET_H_
