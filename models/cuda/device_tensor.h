// File: device_tensor.h
//
// DeviceTensor: an owning, row-major tensor in CUDA device memory (float32,
// float16 or bfloat16), the activations and parameters of the models on
// CUDA. Activations take stream-ordered memory
// (memory::StreamOrderedAllocator, on the stream that makes them and given
// back on it when they die); parameters take plain memory that any stream may
// read (memory::PlainAllocator).
//
//   absl::StatusOr<DeviceTensor> x = DeviceTensor::Upload(host_x, 0, stream);
//   absl::StatusOr<Tensor> back = x->Download(stream);  // waits for stream

#ifndef MODELS_CUDA_DEVICE_TENSOR_H_
#define MODELS_CUDA_DEVICE_TENSOR_H_

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "attention/tensor.h"
#include "memory/allocator.h"
#include "models/module.h"
#include "models/tensor.h"

namespace dilated {
namespace models {

class DeviceTensor {
 public:
  // An empty float32 tensor of shape [0] with no memory.
  DeviceTensor() : shape_({0}) {}

  // Returns an uninitialised tensor on `device`, stream-ordered on `stream`;
  // ResourceExhausted when the memory is not there.
  static absl::StatusOr<DeviceTensor> Empty(DType dtype,
                                            std::vector<int64_t> shape,
                                            int device, cudaStream_t stream);

  // Returns a stream-ordered copy of the host tensor `host` on `device`.
  static absl::StatusOr<DeviceTensor> Upload(const Tensor& host, int device,
                                             cudaStream_t stream);

  // Returns `parameter` rounded to `dtype` in plain (not stream-ordered)
  // device memory; the copy is queued on `stream`.
  static absl::StatusOr<DeviceTensor> UploadParameter(
      const Parameter& parameter, DType dtype, int device, cudaStream_t stream);

  // Returns a stream-ordered copy of this tensor.
  absl::StatusOr<DeviceTensor> Clone(cudaStream_t stream) const;

  // Waits for `stream` and returns the tensor's values on the host.
  absl::StatusOr<Tensor> Download(cudaStream_t stream) const;

  DType dtype() const { return dtype_; }
  int device() const { return device_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int rank() const { return static_cast<int>(shape_.size()); }
  // Returns extent `axis`; negative axes count from the end.
  int64_t dim(int axis) const;
  int64_t NumElements() const;
  int64_t NumBytes() const { return NumElements() * DTypeSize(dtype_); }
  // Returns the shape as "[2, 64, 768]".
  std::string ShapeString() const;

  const void* data() const { return buffer_.get(); }
  void* mutable_data() const { return buffer_.get(); }

 private:
  struct Free {
    memory::Allocator* allocator;
    size_t bytes;
    cudaStream_t stream;
    void operator()(void* data) const;
  };

  DType dtype_ = DType::kFloat32;
  int device_ = 0;
  std::vector<int64_t> shape_;
  std::unique_ptr<void, Free> buffer_{nullptr, Free{nullptr, 0, nullptr}};
};

}  // namespace models
}  // namespace dilated

#endif  // MODELS_CUDA_DEVICE_TENSOR_H_
