// The CUDA backend of "standard": the unfused direct algorithm
// (standard_cuda_path.h) on the context's device and stream.

#include <cuda_runtime_api.h>

#include "absl/status/status.h"
#include "attention/backend_registry.h"
#include "attention/standard_cuda_path.h"
#include "base/cuda_util.h"
#include "factory/status_macros.h"

namespace dilated {
namespace {

absl::Status StandardForwardCuda(const kernels::ForwardParams& params,
                                 const ExecutionContext& context) {
  ScopedCudaDevice device(context.device.index);
  DA_RETURN_IF_ERROR(device.status());
  return StandardCudaForward(params, static_cast<cudaStream_t>(context.stream),
                             context.workspace);
}

absl::Status StandardBackwardCuda(const kernels::BackwardParams& params,
                                  const ExecutionContext& context) {
  ScopedCudaDevice device(context.device.index);
  DA_RETURN_IF_ERROR(device.status());
  return StandardCudaBackward(params, static_cast<cudaStream_t>(context.stream),
                              context.workspace);
}

// Every layout but padding between kept positions of a segment, which the
// run refuses once it has read the mask (as "improved" does).
absl::Status StandardSupportsCuda(const kernels::ForwardParams& params,
                                  const kernels::BackwardParams* /*backward*/) {
  return RequireQueryKeyGeometry("standard", params);
}

}  // namespace

DA_REGISTER_BACKEND("standard", DeviceType::kCuda,
                    (Backend{&StandardForwardCuda, &StandardBackwardCuda,
                             &StandardSupportsCuda,
                             /*priority=*/0}));

}  // namespace dilated
