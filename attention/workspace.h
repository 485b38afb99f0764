// File: workspace.h
//
// HostWorkspace: float32 scratch for a CPU kernel call, taken from the call's
// workspace allocator and given back when the object dies.

#ifndef ATTENTION_WORKSPACE_H_
#define ATTENTION_WORKSPACE_H_

#include <cstdint>
#include <utility>

#include "absl/status/statusor.h"
#include "memory/allocator.h"

namespace dilated {

class HostWorkspace {
 public:
  // Returns `floats` float32 elements, 64-byte aligned, from `allocator`, or
  // the allocator's error (ResourceExhausted).
  // REQUIRES: allocator != nullptr.
  static absl::StatusOr<HostWorkspace> Allocate(memory::Allocator* allocator,
                                                int64_t floats);

  HostWorkspace(HostWorkspace&& other) noexcept
      : allocator_(other.allocator_),
        data_(std::exchange(other.data_, nullptr)),
        bytes_(other.bytes_) {}
  HostWorkspace& operator=(HostWorkspace&&) = delete;
  HostWorkspace(const HostWorkspace&) = delete;
  HostWorkspace& operator=(const HostWorkspace&) = delete;
  ~HostWorkspace() { allocator_->Deallocate(data_, bytes_); }

  float* data() const { return data_; }

 private:
  HostWorkspace(memory::Allocator* allocator, float* data, size_t bytes)
      : allocator_(allocator), data_(data), bytes_(bytes) {}

  memory::Allocator* allocator_;
  float* data_;
  size_t bytes_;
};

inline absl::StatusOr<HostWorkspace> HostWorkspace::Allocate(
    memory::Allocator* allocator, int64_t floats) {
  const size_t bytes = static_cast<size_t>(floats) * sizeof(float);
  absl::StatusOr<void*> data = allocator->Allocate(bytes);
  if (!data.ok()) return data.status();
  return HostWorkspace(allocator, static_cast<float*>(*data), bytes);
}

}  // namespace dilated

#endif  // ATTENTION_WORKSPACE_H_
