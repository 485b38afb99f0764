#include "memory/default_allocator.h"

#include <map>
#include <mutex>
#include <tuple>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_format.h"
#include "memory/host_allocator.h"
#include "memory/internal/fatal.h"

namespace dilated {
namespace memory {
namespace {

// Which built-in allocator of a space a slot holds.
enum class Role { kDefault, kStreamOrdered, kPlain };

using SlotKey = std::tuple<int, int, int>;  // (role, device type, index)

SlotKey KeyOf(Role role, const MemorySpace& space) {
  return {static_cast<int>(role), static_cast<int>(space.type),
          space.type == DeviceType::kCpu ? 0 : space.index};
}

const char* RoleName(Role role) {
  switch (role) {
    case Role::kDefault:
      return "default";
    case Role::kStreamOrdered:
      return "stream-ordered";
    case Role::kPlain:
      return "plain";
  }
  return "";
}

struct Defaults {
  std::mutex mutex;
  std::map<SlotKey, Allocator*> installed;  // Defaults only.
  std::map<SlotKey, std::unique_ptr<Allocator>> builtins;
  std::map<int, BuiltinAllocatorFactories> factories;  // By device type.
};

// Leaky: defaults may be used from static destructors of other libraries.
Defaults& GetDefaults() {
  static Defaults* defaults = new Defaults;
  return *defaults;
}

const DefaultAllocatorFactory& FactoryOf(const BuiltinAllocatorFactories& f,
                                         Role role) {
  switch (role) {
    case Role::kStreamOrdered:
      return f.stream_ordered;
    case Role::kPlain:
      return f.plain;
    case Role::kDefault:
      break;
  }
  return f.default_allocator;
}

// Returns the built-in allocator of `role` for `space`, made on first use.
absl::StatusOr<Allocator*> Builtin(Defaults& defaults, Role role,
                                   const MemorySpace& space)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(defaults.mutex) {
  const SlotKey key = KeyOf(role, space);
  auto builtin = defaults.builtins.find(key);
  if (builtin != defaults.builtins.end()) return builtin->second.get();
  std::unique_ptr<Allocator> made;
  if (space.type == DeviceType::kCpu) {
    made = std::make_unique<HostAllocator>();
  } else {
    auto factories = defaults.factories.find(static_cast<int>(space.type));
    if (factories == defaults.factories.end()) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "no %s allocator for %s: link //memory:cuda_default_allocator%s",
          RoleName(role), DeviceName(space),
          role == Role::kDefault ? " or call SetDefaultAllocator" : ""));
    }
    absl::StatusOr<std::unique_ptr<Allocator>> created =
        FactoryOf(factories->second, role)(space.index);
    if (!created.ok()) return created.status();
    made = *std::move(created);
  }
  Allocator* result = made.get();
  defaults.builtins.emplace(key, std::move(made));
  return result;
}

}  // namespace

absl::StatusOr<Allocator*> DefaultAllocator(const MemorySpace& space) {
  Defaults& defaults = GetDefaults();
  std::lock_guard<std::mutex> lock(defaults.mutex);
  auto installed = defaults.installed.find(KeyOf(Role::kDefault, space));
  if (installed != defaults.installed.end()) return installed->second;
  return Builtin(defaults, Role::kDefault, space);
}

absl::StatusOr<Allocator*> StreamOrderedAllocator(const MemorySpace& space) {
  Defaults& defaults = GetDefaults();
  std::lock_guard<std::mutex> lock(defaults.mutex);
  return Builtin(defaults, Role::kStreamOrdered, space);
}

absl::StatusOr<Allocator*> PlainAllocator(const MemorySpace& space) {
  Defaults& defaults = GetDefaults();
  std::lock_guard<std::mutex> lock(defaults.mutex);
  return Builtin(defaults, Role::kPlain, space);
}

Allocator* SetDefaultAllocator(const MemorySpace& space, Allocator* allocator) {
  if (allocator != nullptr && allocator->space() != space) {
    memory_internal::Fatal(absl::StrFormat(
        "SetDefaultAllocator(%s): the allocator '%s' serves %s",
        DeviceName(space), allocator->name(), DeviceName(allocator->space())));
  }
  Defaults& defaults = GetDefaults();
  const SlotKey key = KeyOf(Role::kDefault, space);
  std::lock_guard<std::mutex> lock(defaults.mutex);
  Allocator* previous = nullptr;
  auto it = defaults.installed.find(key);
  if (it != defaults.installed.end()) {
    previous = it->second;
    defaults.installed.erase(it);
  }
  if (allocator != nullptr) defaults.installed.emplace(key, allocator);
  return previous;
}

bool RegisterBuiltinAllocators(DeviceType type,
                               BuiltinAllocatorFactories factories) {
  if (type == DeviceType::kCpu) {
    memory_internal::Fatal(
        "the host allocators are built in; use SetDefaultAllocator to "
        "replace the default");
  }
  Defaults& defaults = GetDefaults();
  std::lock_guard<std::mutex> lock(defaults.mutex);
  if (!defaults.factories.emplace(static_cast<int>(type), std::move(factories))
           .second) {
    memory_internal::Fatal(
        "built-in allocator factories are registered twice for the same "
        "device type");
  }
  return true;
}

}  // namespace memory
}  // namespace dilated
