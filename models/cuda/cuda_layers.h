// File: cuda_layers.h
//
// The building blocks of the models on CUDA: a cuBLAS handle shared by the
// layers of one model, the state dict of a host module as a name lookup,
// Linear (cublasGemmEx: float32, float16 or bfloat16 operands, float32
// compute, TF32 off) and LayerNorm (float32 parameters). Each is made from
// the parameters of a host module (module.h) under their state-dict names.
//
//   ParameterLookup params = LookupParameters(host_module);
//   absl::StatusOr<CudaLinear> q_proj = CudaLinear::Upload(
//       params, "q_proj.", /*bias=*/true, DType::kFloat16, 0, stream);

#ifndef MODELS_CUDA_CUDA_LAYERS_H_
#define MODELS_CUDA_CUDA_LAYERS_H_

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "models/cuda/device_tensor.h"
#include "models/module.h"

namespace dilated {
namespace models {

// A cuBLAS handle on one device. Not safe for concurrent use: one forward
// pass of a model at a time.
class CublasHandle {
 public:
  // Returns a handle on `device` in cuBLAS's default math mode (no TF32).
  static absl::StatusOr<std::shared_ptr<CublasHandle>> Create(int device);
  ~CublasHandle();
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;

  // Returns the handle with its stream set to `stream`.
  absl::StatusOr<cublasHandle_t> On(cudaStream_t stream) const;

 private:
  explicit CublasHandle(cublasHandle_t handle) : handle_(handle) {}
  cublasHandle_t handle_;
};

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
  std::shared_ptr<CublasHandle> cublas;
};

class CudaLinear {
 public:
  CudaLinear() = default;

  // Returns `prefix`weight (and `prefix`bias) uploaded; the weight in
  // placement.dtype, the bias in float32. The copies are queued on `stream`.
  static absl::StatusOr<CudaLinear> Upload(const ParameterLookup& params,
                                           const std::string& prefix, bool bias,
                                           const CudaPlacement& placement,
                                           cudaStream_t stream);

  // Returns x W^T + b, [..., out_features], in x's dtype (which must be the
  // weight's). The bias is written first and the product accumulated onto it
  // in float32, so every output is rounded once.
  absl::StatusOr<DeviceTensor> Forward(const DeviceTensor& x,
                                       cudaStream_t stream) const {
    return ForwardSlice(x, 0, out_features_, stream);
  }

  // Returns outputs [begin, end) of Forward(x) only.
  absl::StatusOr<DeviceTensor> ForwardSlice(const DeviceTensor& x,
                                            int64_t begin, int64_t end,
                                            cudaStream_t stream) const;

  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }

 private:
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

  // Returns the normalised rows of x.
  absl::StatusOr<DeviceTensor> Forward(const DeviceTensor& x,
                                       cudaStream_t stream) const;

  // Normalises the rows of *x in place.
  absl::Status ForwardInPlace(DeviceTensor* x, cudaStream_t stream) const;

 private:
  int64_t features_ = 0;
  float eps_ = 1e-5f;
  DeviceTensor weight_;
  DeviceTensor bias_;
};

}  // namespace models
}  // namespace dilated

#endif  // MODELS_CUDA_CUDA_LAYERS_H_
