// File: tensor_staging.h
//
// TensorStaging places the tensors of one run on the device it runs on: the
// inputs are uploaded, the outputs reserved there, and both read back into
// host buffers at the end. For the CPU every step is the identity (the host
// buffers are used in place); the CUDA staging (cuda_tensor_staging.cc:
// device allocations and copies on a stream of its own) plugs in behind the
// same interface in builds with --config=cuda.
//
//   DA_ASSIGN_OR_RETURN(std::unique_ptr<TensorStaging> staging,
//                       CreateTensorStaging(device));
//   DA_ASSIGN_OR_RETURN(TensorView q_on_device, staging->Upload(q));
//   DA_ASSIGN_OR_RETURN(TensorView out_on_device, staging->Reserve(out));
//   ... run with staging->stream() ...
//   DA_RETURN_IF_ERROR(staging->Download(out_on_device, out));

#ifndef TOOLS_TENSOR_STAGING_H_
#define TOOLS_TENSOR_STAGING_H_

#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "attention/tensor.h"

namespace dilated {
namespace tools {

class TensorStaging {
 public:
  virtual ~TensorStaging() = default;

  // Returns a view on the device holding the contents of the host tensor
  // `host`, valid while this staging lives.
  virtual absl::StatusOr<TensorView> Upload(const TensorView& host) = 0;

  // Returns a view on the device with the dtype and shape of the host tensor
  // `host`, for a result that Download will copy into `host`.
  virtual absl::StatusOr<TensorView> Reserve(const TensorView& host) = 0;

  // Copies `device` (a view returned by Upload or Reserve) into `host`.
  virtual absl::Status Download(const TensorView& device,
                                const TensorView& host) = 0;

  // Returns the stream to pass in ForwardOptions (null for the CPU).
  virtual void* stream() const = 0;
};

// Returns the staging for `device`: the identity for the CPU; for CUDA the
// one the CUDA build installs (RegisterCudaStaging), or FailedPrecondition in
// a build without CUDA kernels.
absl::StatusOr<std::unique_ptr<TensorStaging>> CreateTensorStaging(
    const Device& device);

// Makes the staging of a CUDA device.
using CudaStagingFactory =
    absl::StatusOr<std::unique_ptr<TensorStaging>> (*)(int device);

// Installs the CUDA staging; the CUDA build's cuda_tensor_staging library
// calls it at start-up.
bool RegisterCudaStaging(CudaStagingFactory factory);

}  // namespace tools
}  // namespace dilated

#endif  // TOOLS_TENSOR_STAGING_H_
