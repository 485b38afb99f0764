// File: internal/page_map.h
//
// PageMap maps the page of any 64-bit address to a pointer. Lookups are
// lock-free (four dependent loads); writers must be serialised by the caller.
// It is a four-level radix tree over the 48-bit page number, with nodes made
// on first use and kept until the map is destroyed, so that a reader racing
// a writer never follows a dangling pointer.
//
//   PageMap map(/*page_shift=*/16);
//   map.Set(span_start, span);          // under the owner's lock
//   void* owner = map.Get(some_pointer); // from any thread, no lock

#ifndef MEMORY_INTERNAL_PAGE_MAP_H_
#define MEMORY_INTERNAL_PAGE_MAP_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "absl/base/optimization.h"

namespace dilated {
namespace memory {
namespace memory_internal {

class PageMap {
 public:
  // Pages are 2^page_shift bytes.
  // REQUIRES: 12 <= page_shift <= 20.
  explicit PageMap(int page_shift);
  ~PageMap();
  PageMap(const PageMap&) = delete;
  PageMap& operator=(const PageMap&) = delete;

  // Returns the value stored for the page holding `address`, or nullptr.
  void* Get(uintptr_t address) const {
    const uint64_t page = address >> page_shift_;
    const Node* node = &root_;
    for (int level = kLevels - 1; level > 0; --level) {
      node = static_cast<const Node*>(
          node->slots[(page >> (level * kBits)) & kMask].load(
              std::memory_order_acquire));
      if (ABSL_PREDICT_FALSE(node == nullptr)) return nullptr;
    }
    return node->slots[page & kMask].load(std::memory_order_acquire);
  }

  // Stores `value` for the page holding `address` (nullptr clears it).
  // REQUIRES: writers are serialised.
  void Set(uintptr_t address, void* value);

  // Stores `value` for every page that overlaps [start, start + bytes).
  void SetRange(uintptr_t start, size_t bytes, void* value);

  // Returns the page size in bytes.
  size_t page_size() const { return size_t{1} << page_shift_; }

 private:
  // 4 levels x 12 bits cover the 48-bit page number of a 64-bit address with
  // pages of 64 KiB or more, and smaller pages up to 2^60 bytes.
  static constexpr int kLevels = 4;
  static constexpr int kBits = 12;
  static constexpr uint64_t kMask = (uint64_t{1} << kBits) - 1;

  struct Node {
    std::atomic<void*> slots[uint64_t{1} << kBits];
  };

  static void DeleteSubtree(Node* node, int level);

  const int page_shift_;
  Node root_;
};

}  // namespace memory_internal
}  // namespace memory
}  // namespace dilated

#endif  // MEMORY_INTERNAL_PAGE_MAP_H_
