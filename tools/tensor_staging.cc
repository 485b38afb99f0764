#include "tools/tensor_staging.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace dilated {
namespace tools {
namespace {

// The CPU: host buffers are used in place.
class HostStaging : public TensorStaging {
 public:
  absl::StatusOr<TensorView> Upload(const TensorView& host) override {
    return host;
  }
  absl::StatusOr<TensorView> Reserve(const TensorView& host) override {
    return host;
  }
  absl::Status Download(const TensorView& device,
                        const TensorView& host) override {
    if (device.data != host.data) {
      std::memcpy(host.data, device.data,
                  host.NumElements() * DTypeSize(host.dtype));
    }
    return absl::OkStatus();
  }
  void* stream() const override { return nullptr; }
};

CudaStagingFactory& InstalledCudaStaging() {
  static CudaStagingFactory factory = nullptr;
  return factory;
}

}  // namespace

bool RegisterCudaStaging(CudaStagingFactory factory) {
  InstalledCudaStaging() = factory;
  return true;
}

absl::StatusOr<std::unique_ptr<TensorStaging>> CreateTensorStaging(
    const Device& device) {
  if (device.type == DeviceType::kCpu) return std::make_unique<HostStaging>();
  if (InstalledCudaStaging() == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("--device=", DeviceName(device),
                     ": this build has no CUDA kernels (build with "
                     "--config=cuda)"));
  }
  return InstalledCudaStaging()(device.index);
}

}  // namespace tools
}  // namespace dilated
