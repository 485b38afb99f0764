#include "python/ops/attention_cache.h"

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "attention/attention.h"
#include "attention/config.h"
#include "attention/registry.h"
#include "python/ops/block_sparse_arguments.h"

namespace dilated {
namespace torch_ops {
namespace {

struct Entry {
  absl::Mutex mutex;
  std::unique_ptr<Attention> attention ABSL_GUARDED_BY(mutex);
};

std::string KeyString(const AttentionKey& key) {
  return absl::StrCat(
      key.implementation, "|", absl::StrJoin(key.segment_lengths, ","), "|",
      absl::StrJoin(key.dilation_rates, ","), "|",
      // %a: the exact double, so that scales differing in the last bit
      // get Attentions of their own.
      key.softmax_scale.has_value() ? absl::StrFormat("%a", *key.softmax_scale)
                                    : "-",
      "|", key.communicator, "|", BlockSparseKey(key.block_sparse), "|",
      absl::StrFormat("%a", key.dropout));
}

// Returns the entry of `key`, inserting an empty one; entries are never
// removed, so the pointer stays valid.
Entry* FindEntry(const AttentionKey& key) {
  static absl::Mutex map_mutex(absl::kConstInit);
  static auto* entries = new std::map<std::string, std::unique_ptr<Entry>>();
  absl::MutexLock lock(&map_mutex);
  std::unique_ptr<Entry>& entry = (*entries)[KeyString(key)];
  if (entry == nullptr) entry = std::make_unique<Entry>();
  return entry.get();
}

}  // namespace

absl::Status WithAttention(
    const AttentionKey& key,
    const std::function<absl::Status(Attention&)>& call) {
  Entry* entry = FindEntry(key);
  absl::MutexLock lock(&entry->mutex);
  if (entry->attention == nullptr) {
    AttentionConfig config;
    config.segment_lengths = key.segment_lengths;
    config.dilation_rates = key.dilation_rates;
    config.softmax_scale = key.softmax_scale;
    config.dropout = key.dropout;
    config.communicator =
        reinterpret_cast<distributed::Communicator*>(key.communicator);
    config.block_sparse = key.block_sparse;
    absl::StatusOr<std::unique_ptr<Attention>> attention =
        CreateAttention(key.implementation, config);
    if (!attention.ok()) return attention.status();
    entry->attention = std::move(*attention);
  }
  return call(*entry->attention);
}

}  // namespace torch_ops
}  // namespace dilated
