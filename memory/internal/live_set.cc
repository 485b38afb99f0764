#include "memory/internal/live_set.h"

#include "absl/strings/str_format.h"
#include "memory/internal/fatal.h"

namespace dilated {
namespace memory {
namespace memory_internal {

void LiveSet::Insert(void* ptr, size_t bytes, absl::string_view owner) {
  const uintptr_t address = reinterpret_cast<uintptr_t>(ptr);
  Shard& shard = shards_[ShardOf(address)];
  bool inserted;
  {
    SpinLockHolder hold(&shard.lock);
    inserted = shard.blocks.emplace(address, bytes).second;
  }
  if (!inserted) {
    Fatal(absl::StrFormat(
        "%s: the system returned %p, which is already live (%d bytes "
        "requested)",
        owner, ptr, bytes));
  }
}

void LiveSet::EraseOrDie(void* ptr, size_t bytes, absl::string_view owner) {
  const uintptr_t address = reinterpret_cast<uintptr_t>(ptr);
  Shard& shard = shards_[ShardOf(address)];
  size_t recorded = 0;
  bool found = false;
  {
    SpinLockHolder hold(&shard.lock);
    auto it = shard.blocks.find(address);
    if (it != shard.blocks.end()) {
      found = true;
      recorded = it->second;
      if (recorded == bytes) shard.blocks.erase(it);
    }
  }
  if (!found) {
    Fatal(absl::StrFormat(
        "%s: Deallocate(%p, %d bytes): the pointer is not live in this "
        "allocator (already freed, or allocated elsewhere)",
        owner, ptr, bytes));
  }
  if (recorded != bytes) {
    Fatal(absl::StrFormat(
        "%s: Deallocate(%p, %d bytes): size mismatch, the block was "
        "allocated with %d bytes",
        owner, ptr, bytes, recorded));
  }
}

size_t LiveSet::size() const {
  size_t total = 0;
  for (const Shard& shard : shards_) {
    SpinLockHolder hold(&shard.lock);
    total += shard.blocks.size();
  }
  return total;
}

}  // namespace memory_internal
}  // namespace memory
}  // namespace dilated
