#include "attention/backend_registry.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace dilated {
namespace {

struct Entry {
  Backend backend;
  const char* file;
  int line;
};

using Key = std::pair<std::string, DeviceType>;

struct BackendTable {
  absl::Mutex mutex;
  absl::flat_hash_map<Key, Entry> entries ABSL_GUARDED_BY(mutex);
};

// Leaky singleton: registrations run during static initialisation and lookups
// may run during static destruction.
BackendTable& Table() {
  static BackendTable* table = new BackendTable();
  return *table;
}

}  // namespace

void RegisterBackend(absl::string_view name, DeviceType device,
                     const Backend& backend, const char* file, int line) {
  BackendTable& table = Table();
  absl::MutexLock lock(&table.mutex);
  auto [it, inserted] = table.entries.try_emplace(
      Key(std::string(name), device), Entry{backend, file, line});
  if (!inserted) {
    std::fprintf(stderr,
                 "Backend '%s' for %s is registered twice, at %s:%d and at "
                 "%s:%d.\n",
                 it->first.first.c_str(),
                 device == DeviceType::kCpu ? "cpu" : "cuda", it->second.file,
                 it->second.line, file, line);
    std::abort();
  }
}

std::optional<Backend> FindBackend(absl::string_view name, DeviceType device) {
  BackendTable& table = Table();
  absl::MutexLock lock(&table.mutex);
  auto it = table.entries.find(Key(std::string(name), device));
  if (it == table.entries.end()) return std::nullopt;
  return it->second.backend;
}

std::vector<std::string> BackendNames(DeviceType device) {
  BackendTable& table = Table();
  std::vector<std::pair<int, std::string>> ranked;
  {
    absl::MutexLock lock(&table.mutex);
    for (const auto& [key, entry] : table.entries) {
      if (key.second == device)
        ranked.emplace_back(-entry.backend.priority, key.first);
    }
  }
  std::sort(ranked.begin(), ranked.end());
  std::vector<std::string> names;
  for (auto& [priority, name] : ranked) names.push_back(std::move(name));
  return names;
}

absl::Status RequireQueryKeyGeometry(absl::string_view backend,
                                     const kernels::ForwardParams& params) {
  if (params.key_seq_len == params.seq_len && params.key_position_offset == 0) {
    return absl::OkStatus();
  }
  return absl::UnimplementedError(absl::StrCat(
      "'", backend, "' cannot run keys of another geometry than the queries (",
      "key_seq_len ", params.key_seq_len, ", seq_len ", params.seq_len,
      ", key_position_offset ", params.key_position_offset, ")"));
}

absl::Status RequireFixedLayout(absl::string_view backend,
                                const kernels::ForwardParams& params) {
  if (kernels::IsPacked(params)) {
    return absl::UnimplementedError(
        absl::StrCat("'", backend,
                     "' cannot run packed variable-length input (cu_seqlens)"));
  }
  if (params.sequence.key_padding_mask != nullptr) {
    return absl::UnimplementedError(
        absl::StrCat("'", backend, "' cannot run a key_padding_mask"));
  }
  for (int gi = 0; gi < params.num_groups; ++gi) {
    const int64_t segment = params.groups[gi].segment_length;
    if (params.seq_len % segment != 0) {
      return absl::UnimplementedError(absl::StrCat(
          "'", backend, "' cannot run partial segments: sequence length ",
          params.seq_len, " is not a multiple of segment_lengths[", gi,
          "] = ", segment));
    }
  }
  return RequireQueryKeyGeometry(backend, params);
}

}  // namespace dilated
