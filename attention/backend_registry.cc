#include "attention/backend_registry.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
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

}  // namespace dilated
