#include "models/cuda/device_tensor.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/cuda_util.h"
#include "factory/status_macros.h"
#include "memory/default_allocator.h"

namespace dilated {
namespace models {

namespace {

// Device buffers are aligned for vector loads and cuBLAS.
constexpr size_t kAlignment = 256;

// Returns `bytes` from the allocator of `role` on `device`, ordered on
// `stream` where the allocator is stream-ordered.
absl::StatusOr<void*> AllocateOn(
    absl::StatusOr<memory::Allocator*> (*role)(const memory::MemorySpace&),
    int device, int64_t bytes, cudaStream_t stream,
    memory::Allocator** allocator) {
  DA_ASSIGN_OR_RETURN(*allocator, role(Device::Cuda(device)));
  return (*allocator)->Allocate(static_cast<size_t>(bytes), kAlignment, stream);
}

}  // namespace

void DeviceTensor::Free::operator()(void* data) const {
  if (data == nullptr) return;
  allocator->Deallocate(data, bytes, kAlignment, stream);
}

absl::StatusOr<DeviceTensor> DeviceTensor::Empty(DType dtype,
                                                 std::vector<int64_t> shape,
                                                 int device,
                                                 cudaStream_t stream) {
  DeviceTensor tensor;
  tensor.dtype_ = dtype;
  tensor.device_ = device;
  tensor.shape_ = std::move(shape);
  const int64_t bytes = tensor.NumBytes();
  if (bytes == 0) return tensor;
  memory::Allocator* allocator = nullptr;
  DA_ASSIGN_OR_RETURN(void* data,
                      AllocateOn(&memory::StreamOrderedAllocator, device, bytes,
                                 stream, &allocator));
  tensor.buffer_ = std::unique_ptr<void, Free>(
      data, Free{allocator, static_cast<size_t>(bytes), stream});
  return tensor;
}

absl::StatusOr<DeviceTensor> DeviceTensor::Upload(const Tensor& host,
                                                  int device,
                                                  cudaStream_t stream) {
  DA_ASSIGN_OR_RETURN(DeviceTensor tensor,
                      Empty(host.dtype(), host.shape(), device, stream));
  if (tensor.NumBytes() == 0) return tensor;
  // A copy from pageable memory returns once the host buffer is staged.
  DA_RETURN_IF_ERROR(
      CudaStatus(cudaMemcpyAsync(tensor.mutable_data(), host.data(),
                                 static_cast<size_t>(tensor.NumBytes()),
                                 cudaMemcpyHostToDevice, stream),
                 "cudaMemcpyAsync to the device"));
  return tensor;
}

absl::StatusOr<DeviceTensor> DeviceTensor::UploadParameter(
    const Parameter& parameter, DType dtype, int device, cudaStream_t stream) {
  Tensor host = Tensor::Uninitialized(dtype, parameter.shape);
  host.AssignFromFloat32(parameter.values);
  DeviceTensor tensor;
  tensor.dtype_ = dtype;
  tensor.device_ = device;
  tensor.shape_ = parameter.shape;
  const int64_t bytes = tensor.NumBytes();
  if (bytes == 0) return tensor;
  memory::Allocator* allocator = nullptr;
  DA_ASSIGN_OR_RETURN(void* data, AllocateOn(&memory::PlainAllocator, device,
                                             bytes, nullptr, &allocator));
  tensor.buffer_ = std::unique_ptr<void, Free>(
      data, Free{allocator, static_cast<size_t>(bytes), nullptr});
  ScopedCudaDevice scoped(device);
  DA_RETURN_IF_ERROR(scoped.status());
  DA_RETURN_IF_ERROR(
      CudaStatus(cudaMemcpyAsync(data, host.data(), static_cast<size_t>(bytes),
                                 cudaMemcpyHostToDevice, stream),
                 "cudaMemcpyAsync of a parameter"));
  return tensor;
}

absl::StatusOr<DeviceTensor> DeviceTensor::Clone(cudaStream_t stream) const {
  DA_ASSIGN_OR_RETURN(DeviceTensor copy,
                      Empty(dtype_, shape_, device_, stream));
  if (copy.NumBytes() == 0) return copy;
  DA_RETURN_IF_ERROR(
      CudaStatus(cudaMemcpyAsync(copy.mutable_data(), data(),
                                 static_cast<size_t>(NumBytes()),
                                 cudaMemcpyDeviceToDevice, stream),
                 "cudaMemcpyAsync on the device"));
  return copy;
}

absl::StatusOr<Tensor> DeviceTensor::Download(cudaStream_t stream) const {
  Tensor host = Tensor::Uninitialized(dtype_, shape_);
  if (NumBytes() > 0) {
    ScopedCudaDevice scoped(device_);
    DA_RETURN_IF_ERROR(scoped.status());
    DA_RETURN_IF_ERROR(
        CudaStatus(cudaMemcpyAsync(host.mutable_data(), data(),
                                   static_cast<size_t>(NumBytes()),
                                   cudaMemcpyDeviceToHost, stream),
                   "cudaMemcpyAsync to the host"));
  }
  DA_RETURN_IF_ERROR(
      CudaStatus(cudaStreamSynchronize(stream), "cudaStreamSynchronize"));
  return host;
}

int64_t DeviceTensor::dim(int axis) const {
  const int resolved = axis < 0 ? axis + rank() : axis;
  DA_CHECK(resolved >= 0 && resolved < rank(), "axis out of range");
  return shape_[resolved];
}

int64_t DeviceTensor::NumElements() const {
  int64_t product = 1;
  for (int64_t extent : shape_) product *= extent;
  return product;
}

std::string DeviceTensor::ShapeString() const {
  return absl::StrCat("[", absl::StrJoin(shape_, ", "), "]");
}

}  // namespace models
}  // namespace dilated
