#include "models/cuda/cuda_layers.h"

#include <climits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/cuda_util.h"
#include "factory/status_macros.h"
#include "models/cuda/device_ops.h"

namespace dilated {
namespace models {
namespace {

cudaDataType CudaType(DType dtype) {
  switch (dtype) {
    case DType::kFloat16:
      return CUDA_R_16F;
    case DType::kBFloat16:
      return CUDA_R_16BF;
    case DType::kFloat32:
    default:  // int32 and bool tensors never reach a float conversion
      break;
  }
  return CUDA_R_32F;
}

}  // namespace

absl::StatusOr<std::shared_ptr<CublasHandle>> CublasHandle::Create(int device) {
  ScopedCudaDevice scoped(device);
  DA_RETURN_IF_ERROR(scoped.status());
  cublasHandle_t handle = nullptr;
  DA_RETURN_IF_ERROR(CublasStatus(cublasCreate(&handle), "cublasCreate"));
  std::shared_ptr<CublasHandle> result(new CublasHandle(handle));
  // Float32 products in full float32: TF32 tensor cores stay off.
  DA_RETURN_IF_ERROR(CublasStatus(
      cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH), "cublasSetMathMode"));
  return result;
}

CublasHandle::~CublasHandle() { cublasDestroy(handle_); }

absl::StatusOr<cublasHandle_t> CublasHandle::On(cudaStream_t stream) const {
  DA_RETURN_IF_ERROR(
      CublasStatus(cublasSetStream(handle_, stream), "cublasSetStream"));
  return handle_;
}

ParameterLookup LookupParameters(Module& module) {
  ParameterLookup lookup;
  for (const NamedParameter& p : module.Parameters()) {
    lookup[p.name] = p.parameter;
  }
  return lookup;
}

absl::StatusOr<const Parameter*> FindParameter(const ParameterLookup& params,
                                               const std::string& name) {
  auto it = params.find(name);
  if (it == params.end()) {
    return absl::InternalError(
        absl::StrCat("the host module has no parameter '", name, "'"));
  }
  return it->second;
}

absl::StatusOr<CudaLinear> CudaLinear::Upload(const ParameterLookup& params,
                                              const std::string& prefix,
                                              bool bias,
                                              const CudaPlacement& placement,
                                              cudaStream_t stream) {
  CudaLinear linear;
  linear.placement_ = placement;
  DA_ASSIGN_OR_RETURN(const Parameter* weight,
                      FindParameter(params, prefix + "weight"));
  linear.out_features_ = weight->shape[0];
  linear.in_features_ = weight->shape[1];
  DA_ASSIGN_OR_RETURN(linear.weight_,
                      DeviceTensor::UploadParameter(*weight, placement.dtype,
                                                    placement.device, stream));
  linear.has_bias_ = bias;
  if (bias) {
    DA_ASSIGN_OR_RETURN(const Parameter* b,
                        FindParameter(params, prefix + "bias"));
    DA_ASSIGN_OR_RETURN(
        linear.bias_, DeviceTensor::UploadParameter(*b, DType::kFloat32,
                                                    placement.device, stream));
  }
  return linear;
}

absl::StatusOr<DeviceTensor> CudaLinear::ForwardSlice(
    const DeviceTensor& x, int64_t begin, int64_t end,
    cudaStream_t stream) const {
  DA_CHECK(x.rank() >= 1 && x.dim(-1) == in_features_,
           "Linear input's last axis must be in_features");
  DA_CHECK(0 <= begin && begin < end && end <= out_features_,
           "Linear output slice out of range");
  DA_CHECK(x.dtype() == placement_.dtype, "Linear input dtype mismatch");
  const int64_t out = end - begin;
  const int64_t rows = x.NumElements() / in_features_;
  if (rows > INT_MAX || out > INT_MAX || in_features_ > INT_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat("a linear layer of ", rows, " rows, ", in_features_,
                     " inputs and ", out,
                     " outputs exceeds cuBLAS's int "
                     "dimensions"));
  }
  std::vector<int64_t> shape = x.shape();
  shape.back() = out;
  DA_ASSIGN_OR_RETURN(DeviceTensor y, DeviceTensor::Empty(x.dtype(), shape,
                                                          x.device(), stream));
  if (rows == 0) return y;
  ScopedCudaDevice scoped(x.device());
  DA_RETURN_IF_ERROR(scoped.status());
  const float* bias =
      has_bias_ ? static_cast<const float*>(bias_.data()) + begin : nullptr;
  float beta = 0.0f;
  if (bias != nullptr) {
    DA_RETURN_IF_ERROR(CudaStatus(gpu::BroadcastRows(bias, rows, out, x.dtype(),
                                                     y.mutable_data(), stream),
                                  "bias broadcast kernel"));
    beta = 1.0f;
  }
  DA_ASSIGN_OR_RETURN(cublasHandle_t handle, placement_.cublas->On(stream));
  const float alpha = 1.0f;
  // Row-major y[rows, out] = x[rows, in] W[out, in]^T is, column-major,
  // y^T[out, rows] = (W^T)^T x^T with W^T stored [in, out], ld in.
  const char* w = static_cast<const char*>(weight_.data()) +
                  begin * in_features_ * DTypeSize(x.dtype());
  const cudaDataType type = CudaType(x.dtype());
  DA_RETURN_IF_ERROR(CublasStatus(
      cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(out),
                   static_cast<int>(rows), static_cast<int>(in_features_),
                   &alpha, w, type, static_cast<int>(in_features_), x.data(),
                   type, static_cast<int>(in_features_), &beta,
                   y.mutable_data(), type, static_cast<int>(out),
                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
      "cublasGemmEx"));
  return y;
}

absl::StatusOr<CudaLayerNorm> CudaLayerNorm::Upload(
    const ParameterLookup& params, const std::string& prefix, double eps,
    const CudaPlacement& placement, cudaStream_t stream) {
  CudaLayerNorm norm;
  norm.eps_ = static_cast<float>(eps);
  DA_ASSIGN_OR_RETURN(const Parameter* weight,
                      FindParameter(params, prefix + "weight"));
  DA_ASSIGN_OR_RETURN(const Parameter* bias,
                      FindParameter(params, prefix + "bias"));
  norm.features_ = weight->NumElements();
  DA_ASSIGN_OR_RETURN(norm.weight_,
                      DeviceTensor::UploadParameter(*weight, DType::kFloat32,
                                                    placement.device, stream));
  DA_ASSIGN_OR_RETURN(norm.bias_,
                      DeviceTensor::UploadParameter(*bias, DType::kFloat32,
                                                    placement.device, stream));
  return norm;
}

absl::StatusOr<DeviceTensor> CudaLayerNorm::Forward(const DeviceTensor& x,
                                                    cudaStream_t stream) const {
  DA_ASSIGN_OR_RETURN(DeviceTensor y, DeviceTensor::Empty(x.dtype(), x.shape(),
                                                          x.device(), stream));
  DA_CHECK(x.rank() >= 1 && x.dim(-1) == features_,
           "LayerNorm input's last axis must be features");
  ScopedCudaDevice scoped(x.device());
  DA_RETURN_IF_ERROR(scoped.status());
  DA_RETURN_IF_ERROR(CudaStatus(
      gpu::LayerNormRows(x.data(), x.NumElements() / features_, features_,
                         static_cast<const float*>(weight_.data()),
                         static_cast<const float*>(bias_.data()), eps_,
                         x.dtype(), y.mutable_data(), stream),
      "LayerNorm kernel"));
  return y;
}

absl::Status CudaLayerNorm::ForwardInPlace(DeviceTensor* x,
                                           cudaStream_t stream) const {
  DA_CHECK(x->rank() >= 1 && x->dim(-1) == features_,
           "LayerNorm input's last axis must be features");
  ScopedCudaDevice scoped(x->device());
  DA_RETURN_IF_ERROR(scoped.status());
  return CudaStatus(
      gpu::LayerNormRows(x->data(), x->NumElements() / features_, features_,
                         static_cast<const float*>(weight_.data()),
                         static_cast<const float*>(bias_.data()), eps_,
                         x->dtype(), x->mutable_data(), stream),
      "LayerNorm kernel");
}

}  // namespace models
}  // namespace dilated
