// The CUDA staging of the dilated_attention command (--device=cuda[:N]):
// tensors are uploaded into device memory from memory::PlainAllocator, the
// run happens on a stream of its own, and results are copied back after the
// stream has drained.

#include <cuda_runtime_api.h>

#include <memory>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/cuda_util.h"
#include "factory/status_macros.h"
#include "memory/default_allocator.h"
#include "tools/tensor_staging.h"

namespace dilated {
namespace tools {
namespace {

// Returns the bytes between the first and one past the last element of a
// view with non-negative strides.
size_t SpanBytes(const TensorView& t) {
  int64_t last = 0;
  for (int d = 0; d < t.rank; ++d) last += (t.shape[d] - 1) * t.strides[d];
  return static_cast<size_t>(last + 1) * DTypeSize(t.dtype);
}

class CudaStaging : public TensorStaging {
 public:
  static absl::StatusOr<std::unique_ptr<TensorStaging>> Create(int device) {
    ScopedCudaDevice scoped(device);
    DA_RETURN_IF_ERROR(scoped.status());
    DA_ASSIGN_OR_RETURN(memory::Allocator * allocator,
                        memory::PlainAllocator(Device::Cuda(device)));
    cudaStream_t stream = nullptr;
    DA_RETURN_IF_ERROR(
        CudaStatus(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking),
                   "cudaStreamCreateWithFlags"));
    return std::unique_ptr<TensorStaging>(
        new CudaStaging(device, allocator, stream));
  }

  ~CudaStaging() override {
    ScopedCudaDevice scoped(device_);
    cudaStreamSynchronize(stream_);
    for (const Block& block : blocks_) {
      allocator_->Deallocate(block.data, block.bytes);
    }
    cudaStreamDestroy(stream_);
  }

  absl::StatusOr<TensorView> Upload(const TensorView& host) override {
    DA_ASSIGN_OR_RETURN(TensorView view, Reserve(host));
    ScopedCudaDevice scoped(device_);
    DA_RETURN_IF_ERROR(scoped.status());
    DA_RETURN_IF_ERROR(
        CudaStatus(cudaMemcpyAsync(view.data, host.data, SpanBytes(host),
                                   cudaMemcpyHostToDevice, stream_),
                   "cudaMemcpyAsync to the device"));
    return view;
  }

  absl::StatusOr<TensorView> Reserve(const TensorView& host) override {
    const size_t bytes = SpanBytes(host);
    DA_ASSIGN_OR_RETURN(void* data, allocator_->Allocate(bytes));
    blocks_.push_back(Block{data, bytes});
    TensorView view = host;
    view.data = data;
    view.device = Device::Cuda(device_);
    return view;
  }

  absl::Status Download(const TensorView& device,
                        const TensorView& host) override {
    ScopedCudaDevice scoped(device_);
    DA_RETURN_IF_ERROR(scoped.status());
    DA_RETURN_IF_ERROR(
        CudaStatus(cudaMemcpyAsync(host.data, device.data, SpanBytes(host),
                                   cudaMemcpyDeviceToHost, stream_),
                   "cudaMemcpyAsync to the host"));
    return CudaStatus(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
  }

  void* stream() const override { return stream_; }

 private:
  struct Block {
    void* data;
    size_t bytes;
  };

  CudaStaging(int device, memory::Allocator* allocator, cudaStream_t stream)
      : device_(device), allocator_(allocator), stream_(stream) {}

  int device_;
  memory::Allocator* allocator_;
  cudaStream_t stream_;
  std::vector<Block> blocks_;
};

const bool registered = RegisterCudaStaging(&CudaStaging::Create);

}  // namespace
}  // namespace tools
}  // namespace dilated
