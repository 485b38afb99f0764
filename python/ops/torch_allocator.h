// A memory::Allocator over PyTorch's allocators: each block is a uint8
// tensor made with torch::stable::new_empty on the device of a given tensor,
// kept alive until Deallocate. On CUDA that is torch's caching allocator on
// the current stream, so the library's workspace shares torch's pool instead
// of holding memory of its own.

#ifndef DILATED_PYTHON_OPS_TORCH_ALLOCATOR_H_
#define DILATED_PYTHON_OPS_TORCH_ALLOCATOR_H_

#include <torch/csrc/stable/tensor.h>

#include <cstddef>
#include <unordered_map>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "memory/allocator.h"

namespace dilated {
namespace torch_ops {

class TorchAllocator : public memory::Allocator {
 public:
  // Allocates on the device of `like`, which must outlive the allocator.
  explicit TorchAllocator(const torch::stable::Tensor& like);
  ~TorchAllocator() override;

 private:
  // Every block is allocated alignment - 1 bytes larger and its pointer
  // rounded up, which meets any alignment up to this one whatever torch's
  // own alignment is.
  static constexpr size_t kMaxAlignment = 4096;

  absl::StatusOr<void*> DoAllocate(size_t bytes, size_t alignment,
                                   memory::StreamHandle stream) override;
  void DoDeallocate(void* ptr, size_t bytes, size_t alignment,
                    memory::StreamHandle stream) noexcept override;
  memory::AllocatorStats DoGetStats() const override;

  const torch::stable::Tensor& like_;
  mutable absl::Mutex mutex_;
  std::unordered_map<void*, torch::stable::Tensor> blocks_
      ABSL_GUARDED_BY(mutex_);
  memory::AllocatorStats stats_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace torch_ops
}  // namespace dilated

#endif  // DILATED_PYTHON_OPS_TORCH_ALLOCATOR_H_
