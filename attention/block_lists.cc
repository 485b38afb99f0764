#include "attention/block_lists.h"

#include "factory/status_macros.h"

namespace dilated {

BlockListStorage::BlockListStorage(const BlockLayout& layout,
                                   int64_t block_size)
    : block_size_(block_size),
      num_blocks_(layout.num_blocks),
      heads_(layout.heads) {
  const int64_t nb = num_blocks_;
  row_begin_.reserve(heads_ * nb + 1);
  column_begin_.reserve(heads_ * nb + 1);
  for (int64_t h = 0; h < heads_; ++h) {
    for (int64_t i = 0; i < nb; ++i) {
      row_begin_.push_back(row_blocks_.size());
      for (int64_t j = 0; j < nb; ++j) {
        if (layout.IsActive(h, i, j)) row_blocks_.push_back(j);
      }
    }
  }
  row_begin_.push_back(row_blocks_.size());
  for (int64_t h = 0; h < heads_; ++h) {
    for (int64_t j = 0; j < nb; ++j) {
      column_begin_.push_back(column_blocks_.size());
      for (int64_t i = 0; i < nb; ++i) {
        if (layout.IsActive(h, i, j)) column_blocks_.push_back(i);
      }
    }
  }
  column_begin_.push_back(column_blocks_.size());
}

kernels::BlockLists BlockListStorage::Lists() const {
  return kernels::BlockLists{block_size_,
                             num_blocks_,
                             heads_,
                             row_begin_.data(),
                             row_blocks_.data(),
                             column_begin_.data(),
                             column_blocks_.data(),
                             static_cast<int64_t>(row_blocks_.size())};
}

absl::StatusOr<BlockListStorage::DeviceCopy> BlockListStorage::CopyFor(
    int64_t device_key,
    absl::FunctionRef<absl::StatusOr<DeviceCopy>()> make) const {
  absl::MutexLock lock(&mutex_);
  auto found = device_copies_.find(device_key);
  if (found != device_copies_.end()) return found->second;
  DA_ASSIGN_OR_RETURN(DeviceCopy copy, make());
  device_copies_.emplace(device_key, copy);
  return copy;
}

absl::StatusOr<std::shared_ptr<const BlockListStorage>> BlockListCache::Get(
    int64_t seq_len, int64_t num_heads) {
  const std::pair<int64_t, int64_t> key(seq_len, num_heads);
  {
    absl::MutexLock lock(&mutex_);
    auto found = lists_.find(key);
    if (found != lists_.end()) return found->second;
  }
  DA_ASSIGN_OR_RETURN(BlockLayout layout,
                      BuildBlockLayout(config_, seq_len, num_heads));
  auto built =
      std::make_shared<const BlockListStorage>(layout, config_.block_size);
  absl::MutexLock lock(&mutex_);
  return lists_.emplace(key, std::move(built)).first->second;
}

}  // namespace dilated
