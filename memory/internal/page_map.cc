#include "memory/internal/page_map.h"

#include "memory/internal/fatal.h"

namespace dilated {
namespace memory {
namespace memory_internal {

PageMap::PageMap(int page_shift) : page_shift_(page_shift), root_() {
  if (page_shift < 12 || page_shift > 20) {
    Fatal("PageMap: page_shift must be in [12, 20]");
  }
}

PageMap::~PageMap() {
  for (auto& slot : root_.slots) {
    DeleteSubtree(static_cast<Node*>(slot.load(std::memory_order_relaxed)),
                  kLevels - 2);
  }
}

void PageMap::DeleteSubtree(Node* node, int level) {
  if (node == nullptr) return;
  if (level > 0) {
    for (auto& slot : node->slots) {
      DeleteSubtree(static_cast<Node*>(slot.load(std::memory_order_relaxed)),
                    level - 1);
    }
  }
  delete node;
}

void PageMap::Set(uintptr_t address, void* value) {
  const uint64_t page = address >> page_shift_;
  Node* node = &root_;
  for (int level = kLevels - 1; level > 0; --level) {
    std::atomic<void*>& slot = node->slots[(page >> (level * kBits)) & kMask];
    Node* child = static_cast<Node*>(slot.load(std::memory_order_relaxed));
    if (child == nullptr) {
      if (value == nullptr) return;  // Nothing stored below: already clear.
      child = new Node();            // Value-initialised: every slot null.
      slot.store(child, std::memory_order_release);
    }
    node = child;
  }
  node->slots[page & kMask].store(value, std::memory_order_release);
}

void PageMap::SetRange(uintptr_t start, size_t bytes, void* value) {
  if (bytes == 0) return;
  const uintptr_t first = start >> page_shift_;
  const uintptr_t last = (start + bytes - 1) >> page_shift_;
  for (uintptr_t page = first; page <= last; ++page) {
    Set(page << page_shift_, value);
  }
}

}  // namespace memory_internal
}  // namespace memory
}  // namespace dilated
