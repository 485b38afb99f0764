#include "models/cuda/device_tensor.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "attention/cuda_util.h"
#include "factory/status_macros.h"

namespace dilated {
namespace models {

void DeviceTensor::Free::operator()(void* data) const {
  if (data == nullptr) return;
  if (stream_ordered) {
    cudaFreeAsync(data, stream);
  } else {
    cudaFree(data);
  }
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
  ScopedCudaDevice scoped(device);
  DA_RETURN_IF_ERROR(scoped.status());
  void* data = nullptr;
  DA_RETURN_IF_ERROR(
      CudaStatus(cudaMallocAsync(&data, static_cast<size_t>(bytes), stream),
                 absl::StrCat("cudaMallocAsync of ", bytes, " bytes for a ",
                              tensor.ShapeString(), " tensor")));
  tensor.buffer_ = std::unique_ptr<void, Free>(data, Free{stream, true});
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
  ScopedCudaDevice scoped(device);
  DA_RETURN_IF_ERROR(scoped.status());
  void* data = nullptr;
  DA_RETURN_IF_ERROR(
      CudaStatus(cudaMalloc(&data, static_cast<size_t>(bytes)),
                 absl::StrCat("cudaMalloc of ", bytes, " bytes")));
  tensor.buffer_ = std::unique_ptr<void, Free>(data, Free{nullptr, false});
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
