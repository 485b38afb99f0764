#include "memory/internal/page_map.h"

#include <cstdlib>

#include "memory/internal/fatal.h"

namespace dilated {
namespace memory {
namespace memory_internal {
namespace {

// calloc of a large block maps fresh zero pages, so untouched parts of the
// root and the leaves cost no memory. All-zero bytes are null atomics.
template <typename T>
T* ZeroedArray(size_t count) {
  void* p = std::calloc(count, sizeof(T));
  if (p == nullptr) Fatal("PageMap: out of memory for the address map");
  return static_cast<T*>(p);
}

}  // namespace

PageMap::PageMap() : root_(ZeroedArray<std::atomic<Leaf*>>(kRootEntries)) {}

PageMap::~PageMap() {
  for (size_t i = 0; i < kRootEntries; ++i) {
    std::free(root_[i].load(std::memory_order_relaxed));
  }
  std::free(root_);
}

void* PageMap::GetHigh(uintptr_t address) const {
  std::lock_guard<std::mutex> lock(high_mutex_);
  auto it = high_.find(address >> kPageShift);
  return it == high_.end() ? nullptr : it->second;
}

void PageMap::Set(uintptr_t address, void* value) {
  if ((address >> kAddressBits) != 0) {
    std::lock_guard<std::mutex> lock(high_mutex_);
    if (value == nullptr) {
      high_.erase(address >> kPageShift);
    } else {
      high_[address >> kPageShift] = value;
    }
    return;
  }
  std::atomic<Leaf*>& slot = root_[address >> kLeafShift];
  Leaf* leaf = slot.load(std::memory_order_relaxed);
  if (leaf == nullptr) {
    if (value == nullptr) return;  // Nothing stored there: already clear.
    leaf = ZeroedArray<Leaf>(1);
    slot.store(leaf, std::memory_order_release);
  }
  leaf->slots[(address >> kPageShift) & kLeafMask].store(
      value, std::memory_order_release);
}

void PageMap::SetRange(uintptr_t start, size_t bytes, void* value) {
  if (bytes == 0) return;
  const uintptr_t first = start >> kPageShift;
  const uintptr_t last = (start + bytes - 1) >> kPageShift;
  for (uintptr_t page = first; page <= last; ++page) {
    Set(page << kPageShift, value);
  }
}

}  // namespace memory_internal
}  // namespace memory
}  // namespace dilated
