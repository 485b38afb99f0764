#include "memory/tracking_allocator.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "memory/internal/fatal.h"

namespace dilated {
namespace memory {

TrackingAllocator::TrackingAllocator(Allocator* upstream)
    : Allocator(upstream->space(), upstream->max_alignment(),
                absl::StrCat("tracking(", upstream->name(), ")")),
      upstream_(upstream) {}

absl::StatusOr<void*> TrackingAllocator::DoAllocate(size_t bytes,
                                                    size_t alignment,
                                                    StreamHandle stream) {
  absl::StatusOr<void*> ptr = upstream_->Allocate(bytes, alignment, stream);
  if (!ptr.ok()) return ptr;
  std::lock_guard<std::mutex> lock(mutex_);
  if (!live_.emplace(*ptr, Record{*ptr, bytes, alignment, stream}).second) {
    memory_internal::Fatal(absl::StrFormat(
        "%s: the upstream returned %p, which is already live", name(), *ptr));
  }
  stats_.bytes_in_use += static_cast<int64_t>(bytes);
  stats_.peak_bytes_in_use =
      std::max(stats_.peak_bytes_in_use, stats_.bytes_in_use);
  ++stats_.allocation_count;
  return ptr;
}

void TrackingAllocator::DoDeallocate(void* ptr, size_t bytes, size_t alignment,
                                     StreamHandle stream) noexcept {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = live_.find(ptr);
    if (it == live_.end()) {
      memory_internal::Fatal(absl::StrFormat(
          "%s: Deallocate(%p, %d bytes): the pointer is not live (already "
          "freed, or allocated elsewhere)",
          name(), ptr, bytes));
    }
    if (it->second.bytes != bytes || it->second.alignment != alignment) {
      memory_internal::Fatal(absl::StrFormat(
          "%s: Deallocate(%p, %d bytes, alignment %d): size mismatch, the "
          "block was allocated with %d bytes, alignment %d",
          name(), ptr, bytes, alignment, it->second.bytes,
          it->second.alignment));
    }
    live_.erase(it);
    stats_.bytes_in_use -= static_cast<int64_t>(bytes);
    ++stats_.deallocation_count;
  }
  upstream_->Deallocate(ptr, bytes, alignment, stream);
}

AllocatorStats TrackingAllocator::DoGetStats() const {
  const AllocatorStats upstream = upstream_->GetStats();
  std::lock_guard<std::mutex> lock(mutex_);
  AllocatorStats stats = stats_;
  stats.bytes_reserved = upstream.bytes_reserved;
  stats.peak_bytes_reserved = upstream.peak_bytes_reserved;
  stats.pool_hits = upstream.pool_hits;
  stats.pool_misses = upstream.pool_misses;
  return stats;
}

std::vector<TrackingAllocator::Record> TrackingAllocator::LiveBlocks() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<Record> blocks;
  blocks.reserve(live_.size());
  for (const auto& entry : live_) blocks.push_back(entry.second);
  return blocks;
}

absl::Status TrackingAllocator::CheckNoLeaks() const {
  std::vector<Record> blocks = LiveBlocks();
  if (blocks.empty()) return absl::OkStatus();
  std::sort(blocks.begin(), blocks.end(),
            [](const Record& a, const Record& b) { return a.ptr < b.ptr; });
  size_t total = 0;
  for (const Record& r : blocks) total += r.bytes;
  std::string listed;
  for (size_t i = 0; i < blocks.size() && i < 10; ++i) {
    absl::StrAppendFormat(&listed, "%s%p (%d bytes)", i == 0 ? "" : ", ",
                          blocks[i].ptr, blocks[i].bytes);
  }
  return absl::FailedPreconditionError(absl::StrFormat(
      "%s: %d blocks (%d bytes) still live: %s%s", name(), blocks.size(), total,
      listed, blocks.size() > 10 ? ", ..." : ""));
}

}  // namespace memory
}  // namespace dilated
