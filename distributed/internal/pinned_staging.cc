#include "distributed/internal/pinned_staging.h"

#include <algorithm>
#include <utility>

#include "distributed/internal/device_copy.h"
#include "factory/status_macros.h"

namespace dilated {
namespace distributed {
namespace internal {

PinnedStaging::Lease& PinnedStaging::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    Return();
    owner_ = std::exchange(other.owner_, nullptr);
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void PinnedStaging::Lease::Return() {
  if (owner_ != nullptr) owner_->free_.push_back(Block{data_, bytes_});
  owner_ = nullptr;
  data_ = nullptr;
  bytes_ = 0;
}

void PinnedStaging::Lease::Abandon() {
  owner_ = nullptr;
  data_ = nullptr;
  bytes_ = 0;
}

PinnedStaging::~PinnedStaging() {
  for (const Block& block : free_) FreePinned(block.data);
}

absl::StatusOr<PinnedStaging::Lease> PinnedStaging::Acquire(size_t bytes) {
  // The smallest cached buffer that fits.
  auto best = free_.end();
  for (auto it = free_.begin(); it != free_.end(); ++it) {
    if (it->bytes >= bytes &&
        (best == free_.end() || it->bytes < best->bytes)) {
      best = it;
    }
  }
  Lease lease;
  if (best != free_.end()) {
    lease.owner_ = this;
    lease.data_ = best->data;
    lease.bytes_ = best->bytes;
    free_.erase(best);
    return lease;
  }
  // None fits: the largest cached buffer is too small to keep around.
  if (!free_.empty()) {
    auto largest = std::max_element(
        free_.begin(), free_.end(),
        [](const Block& a, const Block& b) { return a.bytes < b.bytes; });
    FreePinned(largest->data);
    free_.erase(largest);
  }
  DA_ASSIGN_OR_RETURN(void* data, AllocatePinned(std::max<size_t>(bytes, 1)));
  lease.owner_ = this;
  lease.data_ = data;
  lease.bytes_ = std::max<size_t>(bytes, 1);
  return lease;
}

}  // namespace internal
}  // namespace distributed
}  // namespace dilated
