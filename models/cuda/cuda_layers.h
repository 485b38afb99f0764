// File: cuda_layers.h
//
// The building blocks of the models on CUDA: the state dict of a host
// module as a name lookup, Linear (cuBLASLt through LinearProducts: float32,
// float16 or bfloat16 operands, float32 compute, TF32 off, the bias and an
// optional residual added in the product's epilogue) and LayerNorm (float32
// parameters, optionally after an activation). Each is made from the
// parameters of a host module (module.h) under their state-dict names.
//
//   ParameterLookup params = LookupParameters(host_module);
//   absl::StatusOr<CudaLinear> q_proj = CudaLinear::Upload(
//       params, "q_proj.", /*bias=*/true, placement, stream);

#ifndef MODELS_CUDA_CUDA_LAYERS_H_
#define MODELS_CUDA_CUDA_LAYERS_H_

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "models/cuda/device_ops.h"
#include "models/cuda/device_tensor.h"
#include "models/cuda/linear_products.h"
#include "models/cuda/stage_timer.h"
#include "models/module.h"

namespace dilated {
namespace models {

// Parameters of a host module by full state-dict name.
using ParameterLookup = absl::flat_hash_map<std::string, const Parameter*>;

// Returns every parameter of `module` by name.
ParameterLookup LookupParameters(Module& module);

// Returns the parameter `name`, or Internal naming it when it is missing.
absl::StatusOr<const Parameter*> FindParameter(const ParameterLookup& params,
                                               const std::string& name);

// Where and how the layers of one model run.
struct CudaPlacement {
  int device = 0;
  // The storage type of weights and activations.
  DType dtype = DType::kFloat32;
  // Shared by the layers of one model.
  std::shared_ptr<LinearProducts> products;
  std::shared_ptr<StageTimer> stage_timer;
};

// Returns placement on `device` in `dtype` with a new LinearProducts and a
// new (disabled) StageTimer.
absl::StatusOr<CudaPlacement> PlaceOn(int device, DType dtype);

class CudaLinear {
 public:
  CudaLinear() = default;

  // Returns `prefix`weight (and `prefix`bias) uploaded in placement.dtype.
  // The copies are queued on `stream`.
  static absl::StatusOr<CudaLinear> Upload(const ParameterLookup& params,
                                           const std::string& prefix, bool bias,
                                           const CudaPlacement& placement,
                                           cudaStream_t stream);

  // Returns one layer whose outputs are those of the layers under
  // `prefixes`, in order (their weights stacked along the output axis), so
  // that inputs they share are multiplied once. The layers must have the
  // same in_features.
  static absl::StatusOr<CudaLinear> UploadStacked(
      const ParameterLookup& params, const std::vector<std::string>& prefixes,
      bool bias, const CudaPlacement& placement, cudaStream_t stream);

  // Returns x W^T + b, [..., out_features], in x's dtype (which must be the
  // weight's), every output rounded once.
  absl::StatusOr<DeviceTensor> Forward(const DeviceTensor& x,
                                       cudaStream_t stream) const {
    return ForwardSlice(x, 0, out_features_, nullptr, stream);
  }

  // Returns x W^T + b + residual (residual of the output's shape and dtype),
  // rounded once.
  absl::StatusOr<DeviceTensor> ForwardAdd(const DeviceTensor& x,
                                          const DeviceTensor& residual,
                                          cudaStream_t stream) const {
    return ForwardSlice(x, 0, out_features_, &residual, stream);
  }

  // Returns outputs [begin, end) of Forward(x) only, plus `residual` when it
  // is not null.
  absl::StatusOr<DeviceTensor> ForwardSlice(const DeviceTensor& x,
                                            int64_t begin, int64_t end,
                                            const DeviceTensor* residual,
                                            cudaStream_t stream) const;

  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }

 private:
  static absl::StatusOr<CudaLinear> UploadParameters(
      const Parameter& weight, const Parameter* bias,
      const CudaPlacement& placement, cudaStream_t stream);

  CudaPlacement placement_;
  int64_t in_features_ = 0;
  int64_t out_features_ = 0;
  DeviceTensor weight_;
  DeviceTensor bias_;
  bool has_bias_ = false;
};

class CudaLayerNorm {
 public:
  CudaLayerNorm() = default;

  // Returns `prefix`weight and `prefix`bias uploaded in float32.
  static absl::StatusOr<CudaLayerNorm> Upload(const ParameterLookup& params,
                                              const std::string& prefix,
                                              double eps,
                                              const CudaPlacement& placement,
                                              cudaStream_t stream);

  // Returns the normalised rows of activation(x).
  absl::StatusOr<DeviceTensor> Forward(
      const DeviceTensor& x, cudaStream_t stream,
      gpu::RowActivation activation = gpu::RowActivation::kNone) const;

  // Normalises the rows of activation(*x) in place.
  absl::Status ForwardInPlace(
      DeviceTensor* x, cudaStream_t stream,
      gpu::RowActivation activation = gpu::RowActivation::kNone) const;

  // Normalises, in place, columns [column, column + features) of every row
  // of *x (a column range of a wider tensor, e.g. the queries of a stacked
  // q, k, v projection).
  absl::Status ForwardColumnsInPlace(DeviceTensor* x, int64_t column,
                                     cudaStream_t stream) const;

 private:
  absl::Status Run(const DeviceTensor& x, int64_t column, DeviceTensor* y,
                   gpu::RowActivation activation, cudaStream_t stream) const;

  int64_t features_ = 0;
  float eps_ = 1e-5f;
  std::shared_ptr<StageTimer> stage_timer_;
  DeviceTensor weight_;
  DeviceTensor bias_;
};

}  // namespace models
}  // namespace dilated

#endif  // MODELS_CUDA_CUDA_LAYERS_H_
