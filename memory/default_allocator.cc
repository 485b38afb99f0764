#include "memory/default_allocator.h"

#include <map>
#include <mutex>
#include <utility>

#include "absl/strings/str_format.h"
#include "memory/host_allocator.h"
#include "memory/internal/fatal.h"

namespace dilated {
namespace memory {
namespace {

using SlotKey = std::pair<int, int>;  // (kind, device)

SlotKey KeyOf(const MemorySpace& space) {
  return {static_cast<int>(space.kind),
          space.kind == MemoryKind::kHost ? 0 : space.device};
}

struct Defaults {
  std::mutex mutex;
  std::map<SlotKey, Allocator*> installed;
  std::map<SlotKey, std::unique_ptr<Allocator>> builtins;
  std::map<int, DefaultAllocatorFactory> factories;  // By kind.
};

// Leaky: defaults may be used from static destructors of other libraries.
Defaults& GetDefaults() {
  static Defaults* defaults = new Defaults;
  return *defaults;
}

}  // namespace

absl::StatusOr<Allocator*> DefaultAllocator(const MemorySpace& space) {
  Defaults& defaults = GetDefaults();
  const SlotKey key = KeyOf(space);
  std::lock_guard<std::mutex> lock(defaults.mutex);
  auto installed = defaults.installed.find(key);
  if (installed != defaults.installed.end()) return installed->second;
  auto builtin = defaults.builtins.find(key);
  if (builtin != defaults.builtins.end()) return builtin->second.get();
  std::unique_ptr<Allocator> made;
  if (space.kind == MemoryKind::kHost) {
    made = std::make_unique<HostAllocator>();
  } else {
    auto factory = defaults.factories.find(key.first);
    if (factory == defaults.factories.end()) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "no default allocator for %s: link //memory:cuda_default_allocator "
          "or call SetDefaultAllocator",
          MemorySpaceName(space)));
    }
    absl::StatusOr<std::unique_ptr<Allocator>> created =
        factory->second(space.device);
    if (!created.ok()) return created.status();
    made = *std::move(created);
  }
  Allocator* result = made.get();
  defaults.builtins.emplace(key, std::move(made));
  return result;
}

Allocator* SetDefaultAllocator(const MemorySpace& space, Allocator* allocator) {
  if (allocator != nullptr && KeyOf(allocator->space()) != KeyOf(space)) {
    memory_internal::Fatal(
        absl::StrFormat("SetDefaultAllocator(%s): the allocator '%s' serves %s",
                        MemorySpaceName(space), allocator->name(),
                        MemorySpaceName(allocator->space())));
  }
  Defaults& defaults = GetDefaults();
  const SlotKey key = KeyOf(space);
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

bool RegisterBuiltinDefaultAllocator(MemoryKind kind,
                                     DefaultAllocatorFactory factory) {
  if (kind == MemoryKind::kHost) {
    memory_internal::Fatal(
        "the host default is built in; use "
        "SetDefaultAllocator to replace it");
  }
  Defaults& defaults = GetDefaults();
  std::lock_guard<std::mutex> lock(defaults.mutex);
  if (!defaults.factories.emplace(static_cast<int>(kind), std::move(factory))
           .second) {
    memory_internal::Fatal(
        "a built-in default allocator factory is "
        "registered twice for the same memory kind");
  }
  return true;
}

}  // namespace memory
}  // namespace dilated
