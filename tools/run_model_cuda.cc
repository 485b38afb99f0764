// The CUDA forward of run_model (--device=cuda[:N]): the loaded host module
// is copied to the device in the dtype of input.x, the inputs are staged, the
// model runs on a stream of its own and y comes back to the host.

#include <cuda_runtime_api.h>

#include <memory>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/cuda_util.h"
#include "factory/status_macros.h"
#include "models/cuda/cuda_multihead.h"
#include "models/cuda/cuda_transformer.h"
#include "models/cuda/device_tensor.h"
#include "tools/run_model.h"

namespace dilated {
namespace tools {
namespace {

using models::DeviceTensor;
using models::Tensor;

// A stream on one device, destroyed with the object.
class Stream {
 public:
  static absl::StatusOr<std::unique_ptr<Stream>> Create(int device) {
    ScopedCudaDevice scoped(device);
    DA_RETURN_IF_ERROR(scoped.status());
    cudaStream_t stream = nullptr;
    DA_RETURN_IF_ERROR(
        CudaStatus(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking),
                   "cudaStreamCreateWithFlags"));
    return std::unique_ptr<Stream>(new Stream(stream));
  }
  ~Stream() {
    cudaStreamSynchronize(stream_);
    cudaStreamDestroy(stream_);
  }
  cudaStream_t get() const { return stream_; }

 private:
  explicit Stream(cudaStream_t stream) : stream_(stream) {}
  cudaStream_t stream_;
};

absl::StatusOr<DeviceTensor> RunOnDevice(int device, BuiltModel& model,
                                         const DeviceTensor& x,
                                         const DeviceTensor* memory,
                                         bool is_causal, cudaStream_t stream) {
  const DType dtype = x.dtype();
  if (model.multihead) {
    DA_ASSIGN_OR_RETURN(auto gpu, models::CudaMultiheadAttention::Upload(
                                      *model.multihead, dtype, device, stream));
    if (memory == nullptr) return gpu->Forward(x, is_causal, stream);
    return gpu->Forward(x, *memory, *memory, is_causal, stream);
  }
  if (model.encoder) {
    DA_ASSIGN_OR_RETURN(auto gpu, models::CudaEncoderLayer::Upload(
                                      *model.encoder, dtype, device, stream));
    return gpu->Forward(x, is_causal, stream);
  }
  if (model.decoder) {
    DA_ASSIGN_OR_RETURN(auto gpu, models::CudaDecoderLayer::Upload(
                                      *model.decoder, dtype, device, stream));
    return gpu->Forward(x, *memory, is_causal, is_causal, stream);
  }
  DA_ASSIGN_OR_RETURN(auto gpu, models::CudaLongNet::Upload(
                                    *model.longnet, dtype, device, stream));
  return gpu->Forward(x, is_causal, stream);
}

absl::StatusOr<Tensor> CudaForward(int device, BuiltModel& model,
                                   const Tensor& x, const Tensor* memory,
                                   bool is_causal) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    cudaGetLastError();  // clears the error of a machine without a GPU
    return absl::FailedPreconditionError(
        "--device=cuda: no CUDA device is available");
  }
  if (device >= count) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--device=cuda:", device, ": there are ", count, " CUDA devices"));
  }
  DA_ASSIGN_OR_RETURN(std::unique_ptr<Stream> stream, Stream::Create(device));
  DA_ASSIGN_OR_RETURN(const DeviceTensor x_device,
                      DeviceTensor::Upload(x, device, stream->get()));
  std::optional<DeviceTensor> memory_device;
  if (memory != nullptr) {
    DA_ASSIGN_OR_RETURN(memory_device,
                        DeviceTensor::Upload(*memory, device, stream->get()));
  }
  DA_ASSIGN_OR_RETURN(const DeviceTensor y,
                      RunOnDevice(device, model, x_device,
                                  memory_device ? &*memory_device : nullptr,
                                  is_causal, stream->get()));
  return y.Download(stream->get());
}

// Installs CudaForward when the binary starts.
const bool kRegistered = [] {
  RegisterCudaForward(&CudaForward);
  return true;
}();

}  // namespace
}  // namespace tools
}  // namespace dilated
