// File: local_kernels.h
//
// What one rank of a sequence-parallel call runs on its own device: the
// attention kernels (the best registered backend for the device that can run
// the parameters, as "auto" picks), the element-wise row operations of
// row_ops.h on the right device, and scratch memory from the call's
// workspace allocator.

#ifndef DISTRIBUTED_LOCAL_KERNELS_H_
#define DISTRIBUTED_LOCAL_KERNELS_H_

#include <cstddef>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "attention/backend_registry.h"
#include "distributed/row_ops.h"
#include "kernels/dilated_params.h"
#include "memory/allocator.h"

namespace dilated {
namespace distributed {

// Memory from an allocator, ordered on a stream (device) or not (host),
// given back when the object dies.
class Scratch {
 public:
  Scratch() = default;
  Scratch(Scratch&& other) noexcept { *this = std::move(other); }
  Scratch& operator=(Scratch&& other) noexcept;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { Release(); }

  void* data() const { return data_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data_);
  }

 private:
  friend class LocalKernels;
  void Release();

  void* data_ = nullptr;
  size_t bytes_ = 0;
  void* stream_ = nullptr;
  memory::Allocator* allocator_ = nullptr;
};

class LocalKernels {
 public:
  explicit LocalKernels(const ExecutionContext& context) : context_(context) {}

  const ExecutionContext& context() const { return context_; }
  bool on_device() const { return context_.device.type == DeviceType::kCuda; }

  // Returns `bytes` bytes of scratch on the call's device.
  absl::StatusOr<Scratch> Allocate(size_t bytes);

  // Runs the highest-priority backend for the device that can run `params`
  // (moving on when one refuses with Unimplemented as it runs).
  absl::Status Forward(const kernels::ForwardParams& params);
  absl::Status Backward(const kernels::BackwardParams& params);

  // Returns whether the backend Backward would pick for `params` takes the
  // rows' softmax statistics from forward.out and forward.lse
  // (Backend::backward_reads_forward_lse), so that a block of a row's keys
  // can run on its own.
  bool BackwardReadsForwardLse(const kernels::BackwardParams& params) const;

  // row_ops.h on the call's device (and stream).
  absl::Status CopyRows(kernels::DataType dtype, const RowsShape& shape,
                        const kernels::TensorParams& src,
                        const kernels::TensorParams& dst);
  absl::Status ZeroRows(kernels::DataType dtype, const RowsShape& shape,
                        const kernels::TensorParams& dst);
  absl::Status FillLse(const RowsShape& shape, const LseView& dst, float value);
  absl::Status CopyLse(const RowsShape& shape, const LseView& src,
                       const LseView& dst);
  absl::Status ClearAccumulator(const RowsShape& shape, const Accumulator& acc);
  absl::Status MergeInto(kernels::DataType dtype, const RowsShape& shape,
                         const kernels::TensorParams& piece,
                         const LseView& piece_lse, const Accumulator& acc);
  absl::Status AddInto(kernels::DataType dtype, const RowsShape& shape,
                       const kernels::TensorParams& src,
                       const Accumulator& acc);
  absl::Status StoreAccumulator(kernels::DataType dtype, const RowsShape& shape,
                                const Accumulator& acc, float scale,
                                const kernels::TensorParams& dst,
                                const LseView& dst_lse);

 private:
  template <typename Params, typename Run>
  absl::Status RunBest(const kernels::ForwardParams& forward,
                       const kernels::BackwardParams* backward, Run run);

  ExecutionContext context_;
};

}  // namespace distributed
}  // namespace dilated

#endif  // DISTRIBUTED_LOCAL_KERNELS_H_
