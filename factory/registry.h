// File: registry.h
//
// A generic string-keyed registry of factories. Implementations register
// themselves at static-initialisation time; callers create them by name.
//
//   using ShapeRegistry = dilated::factory::Registry<Shape, double>;
//   ShapeRegistry& registry = ...;  // usually a leaky function-local singleton
//   registry.Register(
//       "circle",
//       [](double r) -> absl::StatusOr<std::unique_ptr<Shape>> {
//         return std::make_unique<Circle>(r);
//       },
//       __FILE__, __LINE__);
//   absl::StatusOr<std::unique_ptr<Shape>> s =
//       registry.Create("circle", 2.0);
//
// DA_REGISTER_AT_STARTUP(statement) runs a registration statement during
// static initialisation; every registry of the library (attention
// implementations, backends, multihead modules) defines its macro with it:
//
//   // The body of a registration macro of a Shape registry:
//   DA_REGISTER_AT_STARTUP(
//       ShapeRegistryInstance().Register(name, creator, __FILE__, __LINE__))
//
// Registering a name twice is a programming error (two libraries claiming the
// same name, or one library linked twice) and aborts naming both sites. An
// unknown name is NotFound and lists the names that are registered.

#ifndef FACTORY_REGISTRY_H_
#define FACTORY_REGISTRY_H_

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "factory/status_macros.h"

namespace dilated {
namespace factory {

template <typename Base, typename... Args>
class Registry {
 public:
  using Creator = std::function<absl::StatusOr<std::unique_ptr<Base>>(Args...)>;

  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Stores `creator` under `name`. `file` and `line` identify the registration
  // site for the duplicate-name diagnostic.
  // REQUIRES: `name` is not registered yet; otherwise the process aborts.
  void Register(absl::string_view name, Creator creator, const char* file,
                int line) ABSL_LOCKS_EXCLUDED(mutex_) {
    absl::MutexLock lock(&mutex_);
    auto [it, inserted] = entries_.try_emplace(
        std::string(name), Entry{std::move(creator), file, line});
    if (!inserted) {
      std::fprintf(stderr,
                   "Registry: the name '%s' is registered twice, at %s:%d and "
                   "at %s:%d (two libraries claim it, or one library is linked "
                   "both statically and dynamically).\n",
                   it->first.c_str(), it->second.file, it->second.line, file,
                   line);
      std::abort();
    }
  }

  // Removes `name`; returns whether it was registered. Meant for tests that
  // inject a fake and take it out again.
  bool Unregister(absl::string_view name) ABSL_LOCKS_EXCLUDED(mutex_) {
    absl::MutexLock lock(&mutex_);
    return entries_.erase(std::string(name)) > 0;
  }

  // Returns a new object made by the creator registered under `name`, the
  // creator's own error, or NotFound listing the registered names.
  absl::StatusOr<std::unique_ptr<Base>> Create(absl::string_view name,
                                               Args... args) const
      ABSL_LOCKS_EXCLUDED(mutex_) {
    Creator creator;
    {
      absl::MutexLock lock(&mutex_);
      auto it = entries_.find(std::string(name));
      if (it != entries_.end()) creator = it->second.creator;
    }
    if (!creator) {
      return absl::NotFoundError(absl::StrCat(
          "no implementation is registered under the name '", name,
          "'; registered names: [", absl::StrJoin(Names(), ", "), "]"));
    }
    return creator(std::forward<Args>(args)...);
  }

  // Returns whether `name` is registered.
  bool Contains(absl::string_view name) const ABSL_LOCKS_EXCLUDED(mutex_) {
    absl::MutexLock lock(&mutex_);
    return entries_.contains(std::string(name));
  }

  // Returns the registered names, sorted.
  std::vector<std::string> Names() const ABSL_LOCKS_EXCLUDED(mutex_) {
    absl::MutexLock lock(&mutex_);
    std::vector<std::string> names;
    names.reserve(entries_.size());
    for (const auto& entry : entries_) names.push_back(entry.first);
    std::sort(names.begin(), names.end());
    return names;
  }

 private:
  struct Entry {
    Creator creator;
    const char* file;
    int line;
  };

  mutable absl::Mutex mutex_;
  absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mutex_);
};

namespace internal {
// Runs a registration when a static object is initialised.
struct StaticInitializer {
  template <typename Registration>
  explicit StaticInitializer(Registration registration) {
    registration();
  }
};
}  // namespace internal

}  // namespace factory
}  // namespace dilated

// Runs `statement` (a registration) at static-initialisation time. The
// library holding it must be linked with alwayslink = 1.
#define DA_REGISTER_AT_STARTUP(statement)                      \
  static const ::dilated::factory::internal::StaticInitializer \
  DA_INTERNAL_CONCAT(da_registration_, __COUNTER__)([] { statement; })

#endif  // FACTORY_REGISTRY_H_
