// File: internal/page_map.h
//
// PageMap maps the 64 KiB page of any address to a pointer. Lookups are
// lock-free: two dependent loads for addresses below 2^48 (every host and
// CUDA address on the machines we target), a locked hash map above. Writers
// must be serialised by the caller. Leaves are made on first use and kept
// until the map dies, so a reader racing a writer never follows a dangling
// pointer.
//
//   PageMap map;
//   map.Set(span_start, span);          // under the owner's lock
//   void* owner = map.Get(some_pointer); // from any thread, no lock
//
// The root (2^16 entries) and each leaf (2^16 entries, 4 GiB of addresses)
// are 512 KiB of zero pages that the system backs only where touched.

#ifndef MEMORY_INTERNAL_PAGE_MAP_H_
#define MEMORY_INTERNAL_PAGE_MAP_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>

#include "absl/base/optimization.h"
#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"

namespace dilated {
namespace memory {
namespace memory_internal {

class PageMap {
 public:
  static constexpr int kPageShift = 16;

  PageMap();
  ~PageMap();
  PageMap(const PageMap&) = delete;
  PageMap& operator=(const PageMap&) = delete;

  // Returns the value stored for the page holding `address`, or nullptr.
  void* Get(uintptr_t address) const {
    if (ABSL_PREDICT_FALSE((address >> kAddressBits) != 0)) {
      return GetHigh(address);
    }
    const Leaf* leaf =
        root_[address >> kLeafShift].load(std::memory_order_acquire);
    if (ABSL_PREDICT_FALSE(leaf == nullptr)) return nullptr;
    return leaf->slots[(address >> kPageShift) & kLeafMask].load(
        std::memory_order_acquire);
  }

  // Stores `value` for the page holding `address` (nullptr clears it).
  // REQUIRES: writers are serialised.
  void Set(uintptr_t address, void* value);

  // Stores `value` for every page that overlaps [start, start + bytes).
  void SetRange(uintptr_t start, size_t bytes, void* value);

 private:
  static constexpr int kAddressBits = 48;
  static constexpr int kLeafShift = 32;  // A leaf covers 4 GiB.
  static constexpr uint64_t kLeafMask =
      (uint64_t{1} << (kLeafShift - kPageShift)) - 1;
  static constexpr size_t kRootEntries = size_t{1}
                                         << (kAddressBits - kLeafShift);

  struct Leaf {
    std::atomic<void*> slots[uint64_t{1} << (kLeafShift - kPageShift)];
  };

  void* GetHigh(uintptr_t address) const;

  std::atomic<Leaf*>* const root_;  // kRootEntries, zero pages.
  mutable std::mutex high_mutex_;
  absl::flat_hash_map<uintptr_t, void*> high_ ABSL_GUARDED_BY(high_mutex_);
};

}  // namespace memory_internal
}  // namespace memory
}  // namespace dilated

#endif  // MEMORY_INTERNAL_PAGE_MAP_H_
