#include "memory/cuda_stream_ordering.h"

#include <cuda_runtime.h>

#include "base/cuda_util.h"

namespace dilated {
namespace memory {

absl::StatusOr<std::unique_ptr<CudaStreamOrdering>> CudaStreamOrdering::Create(
    int device) {
  absl::Status status = CheckCudaDevice(device);
  if (!status.ok()) return status;
  ScopedCudaDevice scope(device);
  cudaEvent_t event = nullptr;
  status = CudaStatus(cudaEventCreateWithFlags(&event, cudaEventDisableTiming),
                      "cudaEventCreateWithFlags");
  if (!status.ok()) return status;
  return std::unique_ptr<CudaStreamOrdering>(
      new CudaStreamOrdering(device, event));
}

CudaStreamOrdering::CudaStreamOrdering(int device, void* event)
    : device_(device), event_(event) {}

CudaStreamOrdering::~CudaStreamOrdering() {
  ScopedCudaDevice scope(device_);
  cudaEventDestroy(static_cast<cudaEvent_t>(event_));
}

absl::Status CudaStreamOrdering::OrderAfter(StreamHandle consumer,
                                            StreamHandle producer) {
  std::lock_guard<std::mutex> lock(mutex_);
  ScopedCudaDevice scope(device_);
  cudaEvent_t event = static_cast<cudaEvent_t>(event_);
  absl::Status status =
      CudaStatus(cudaEventRecord(event, static_cast<cudaStream_t>(producer)),
                 "cudaEventRecord");
  if (!status.ok()) return status;
  return CudaStatus(
      cudaStreamWaitEvent(static_cast<cudaStream_t>(consumer), event, 0),
      "cudaStreamWaitEvent");
}

absl::Status CudaStreamOrdering::SynchronizeAll() {
  ScopedCudaDevice scope(device_);
  return CudaStatus(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
}

}  // namespace memory
}  // namespace dilated
