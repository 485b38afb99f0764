// File: block_lists.h
//
// The compact lists of active blocks (kernels/block_sparse_params.h) of a
// block layout, and a cache that builds them once per (sequence length,
// heads) for an attention object.

#ifndef ATTENTION_BLOCK_LISTS_H_
#define ATTENTION_BLOCK_LISTS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "attention/block_layout.h"
#include "kernels/block_sparse_params.h"

namespace dilated {

// Owns the arrays a kernels::BlockLists points to.
class BlockListStorage {
 public:
  // Lists every active block of `layout`, ascending within each list.
  BlockListStorage(const BlockLayout& layout, int64_t block_size);

  // Returns the view the kernels take; valid while this object lives.
  kernels::BlockLists Lists() const;

  // Returns the number of active (layout head, query block, key block)
  // triples.
  int64_t active_blocks() const { return row_blocks_.size(); }

  // A copy of the lists in a device's memory, in whatever form that
  // device's kernels keep it, released (by the maker's deleter) with the
  // last reference.
  using DeviceCopy = std::shared_ptr<const void>;

  // Returns the copy for `device_key` (a device's index), calling make()
  // only the first time (thread-safe), so that the lists cross to a device
  // once per (lists, device) rather than on every call. A failed make() is
  // not kept.
  absl::StatusOr<DeviceCopy> CopyFor(
      int64_t device_key,
      absl::FunctionRef<absl::StatusOr<DeviceCopy>()> make) const
      ABSL_LOCKS_EXCLUDED(mutex_);

 private:
  int64_t block_size_;
  int64_t num_blocks_;
  int64_t heads_;
  std::vector<int32_t> row_begin_;
  std::vector<int32_t> row_blocks_;
  std::vector<int32_t> column_begin_;
  std::vector<int32_t> column_blocks_;
  mutable absl::Mutex mutex_;
  mutable std::map<int64_t, DeviceCopy> device_copies_ ABSL_GUARDED_BY(mutex_);
};

// Builds the lists of a BlockSparseConfig on first use for each (sequence
// length, heads) and keeps them; safe to call from several threads.
class BlockListCache {
 public:
  explicit BlockListCache(BlockSparseConfig config)
      : config_(std::move(config)) {}

  // Returns the lists for a call, or BuildBlockLayout's InvalidArgument.
  absl::StatusOr<std::shared_ptr<const BlockListStorage>> Get(int64_t seq_len,
                                                              int64_t num_heads)
      ABSL_LOCKS_EXCLUDED(mutex_);

  const BlockSparseConfig& config() const { return config_; }

 private:
  const BlockSparseConfig config_;
  absl::Mutex mutex_;
  std::map<std::pair<int64_t, int64_t>, std::shared_ptr<const BlockListStorage>>
      lists_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace dilated

#endif  // ATTENTION_BLOCK_LISTS_H_
