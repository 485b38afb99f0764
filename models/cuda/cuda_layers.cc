#include "models/cuda/cuda_layers.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/cuda_util.h"
#include "factory/status_macros.h"
#include "models/cuda/device_ops.h"

namespace dilated {
namespace models {
namespace {

// Returns the parameters `prefix` + `suffix` for every prefix stacked along
// their first axis; InvalidArgument for no prefixes, or naming the first
// parameter whose trailing axes differ from the first one's.
absl::StatusOr<Parameter> StackRows(const ParameterLookup& params,
                                    const std::vector<std::string>& prefixes,
                                    const std::string& suffix) {
  if (prefixes.empty()) {
    return absl::InvalidArgumentError("stacking needs at least one layer");
  }
  Parameter stacked;
  for (const std::string& prefix : prefixes) {
    DA_ASSIGN_OR_RETURN(const Parameter* part,
                        FindParameter(params, prefix + suffix));
    if (stacked.shape.empty()) {
      stacked.shape = part->shape;
      stacked.shape[0] = 0;
    } else if (!std::equal(part->shape.begin() + 1, part->shape.end(),
                           stacked.shape.begin() + 1, stacked.shape.end())) {
      return absl::InvalidArgumentError(absl::StrCat(
          prefix, suffix, " does not stack with ", prefixes.front(), suffix,
          ": their shapes differ beyond the first axis"));
    }
    stacked.shape[0] += part->shape[0];
    stacked.values.insert(stacked.values.end(), part->values.begin(),
                          part->values.end());
  }
  return stacked;
}

}  // namespace

absl::StatusOr<CudaPlacement> PlaceOn(int device, DType dtype) {
  CudaPlacement placement;
  placement.device = device;
  placement.dtype = dtype;
  DA_ASSIGN_OR_RETURN(placement.products, LinearProducts::Create(device));
  placement.stage_timer = std::make_shared<StageTimer>();
  return placement;
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
  DA_ASSIGN_OR_RETURN(const Parameter* weight,
                      FindParameter(params, prefix + "weight"));
  const Parameter* b = nullptr;
  if (bias) {
    DA_ASSIGN_OR_RETURN(b, FindParameter(params, prefix + "bias"));
  }
  return UploadParameters(*weight, b, placement, stream);
}

absl::StatusOr<CudaLinear> CudaLinear::UploadStacked(
    const ParameterLookup& params, const std::vector<std::string>& prefixes,
    bool bias, const CudaPlacement& placement, cudaStream_t stream) {
  DA_ASSIGN_OR_RETURN(const Parameter weight,
                      StackRows(params, prefixes, "weight"));
  if (!bias) return UploadParameters(weight, nullptr, placement, stream);
  DA_ASSIGN_OR_RETURN(const Parameter b, StackRows(params, prefixes, "bias"));
  return UploadParameters(weight, &b, placement, stream);
}

absl::StatusOr<CudaLinear> CudaLinear::UploadParameters(
    const Parameter& weight, const Parameter* bias,
    const CudaPlacement& placement, cudaStream_t stream) {
  CudaLinear linear;
  linear.placement_ = placement;
  linear.out_features_ = weight.shape[0];
  linear.in_features_ = weight.shape[1];
  DA_ASSIGN_OR_RETURN(linear.weight_,
                      DeviceTensor::UploadParameter(weight, placement.dtype,
                                                    placement.device, stream));
  linear.has_bias_ = bias != nullptr;
  if (bias != nullptr) {
    DA_ASSIGN_OR_RETURN(
        linear.bias_, DeviceTensor::UploadParameter(*bias, placement.dtype,
                                                    placement.device, stream));
  }
  return linear;
}

absl::StatusOr<DeviceTensor> CudaLinear::ForwardSlice(
    const DeviceTensor& x, int64_t begin, int64_t end,
    const DeviceTensor* residual, cudaStream_t stream) const {
  DA_CHECK(x.rank() >= 1 && x.dim(-1) == in_features_,
           "Linear input's last axis must be in_features");
  DA_CHECK(0 <= begin && begin < end && end <= out_features_,
           "Linear output slice out of range");
  DA_CHECK(x.dtype() == placement_.dtype, "Linear input dtype mismatch");
  std::vector<int64_t> shape = x.shape();
  shape.back() = end - begin;
  if (residual != nullptr &&
      (residual->shape() != shape || residual->dtype() != x.dtype() ||
       residual->device() != x.device())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the residual of a linear layer must be ", DTypeName(x.dtype()), " ",
        "[", absl::StrJoin(shape, ", "), "]", " on cuda:", x.device(), ", got ",
        DTypeName(residual->dtype()), " ", residual->ShapeString(),
        " on cuda:", residual->device()));
  }
  DA_ASSIGN_OR_RETURN(DeviceTensor y, DeviceTensor::Empty(x.dtype(), shape,
                                                          x.device(), stream));
  const int64_t element = DTypeSize(x.dtype());
  LinearProduct product;
  product.dtype = x.dtype();
  product.rows = x.NumElements() / in_features_;
  product.in = in_features_;
  product.out = end - begin;
  product.x = x.data();
  product.weight =
      static_cast<const char*>(weight_.data()) + begin * in_features_ * element;
  product.bias = has_bias_
                     ? static_cast<const char*>(bias_.data()) + begin * element
                     : nullptr;
  product.residual = residual != nullptr ? residual->data() : nullptr;
  product.y = y.mutable_data();
  ScopedStage stage(placement_.stage_timer.get(), Stage::kLinearProduct,
                    stream);
  DA_RETURN_IF_ERROR(stage.status());
  DA_RETURN_IF_ERROR(placement_.products->Run(product, stream));
  return y;
}

absl::StatusOr<CudaLayerNorm> CudaLayerNorm::Upload(
    const ParameterLookup& params, const std::string& prefix, double eps,
    const CudaPlacement& placement, cudaStream_t stream) {
  CudaLayerNorm norm;
  norm.eps_ = static_cast<float>(eps);
  norm.stage_timer_ = placement.stage_timer;
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

absl::Status CudaLayerNorm::Run(const DeviceTensor& x, int64_t column,
                                DeviceTensor* y, gpu::RowActivation activation,
                                cudaStream_t stream) const {
  DA_CHECK(x.rank() >= 1 && column >= 0 && column + features_ <= x.dim(-1),
           "LayerNorm columns must lie in the input's last axis");
  DA_CHECK(y->shape() == x.shape() && y->dtype() == x.dtype(),
           "LayerNorm output must have the input's shape and dtype");
  ScopedCudaDevice scoped(x.device());
  DA_RETURN_IF_ERROR(scoped.status());
  const int64_t width = x.dim(-1);
  const int64_t offset = column * DTypeSize(x.dtype());
  gpu::LayerNormArgs args;
  args.x = static_cast<const char*>(x.data()) + offset;
  args.x_row_stride = width;
  args.y = static_cast<char*>(y->mutable_data()) + offset;
  args.y_row_stride = width;
  args.rows = x.NumElements() / width;
  args.features = features_;
  args.weight = static_cast<const float*>(weight_.data());
  args.bias = static_cast<const float*>(bias_.data());
  args.eps = eps_;
  args.activation = activation;
  args.dtype = x.dtype();
  ScopedStage stage(stage_timer_.get(), Stage::kLayerNorm, stream);
  DA_RETURN_IF_ERROR(stage.status());
  return CudaStatus(gpu::LayerNormRows(args, stream), "LayerNorm kernel");
}

absl::StatusOr<DeviceTensor> CudaLayerNorm::Forward(
    const DeviceTensor& x, cudaStream_t stream,
    gpu::RowActivation activation) const {
  DA_CHECK(x.rank() >= 1 && x.dim(-1) == features_,
           "LayerNorm input's last axis must be features");
  DA_ASSIGN_OR_RETURN(DeviceTensor y, DeviceTensor::Empty(x.dtype(), x.shape(),
                                                          x.device(), stream));
  DA_RETURN_IF_ERROR(Run(x, 0, &y, activation, stream));
  return y;
}

absl::Status CudaLayerNorm::ForwardInPlace(
    DeviceTensor* x, cudaStream_t stream, gpu::RowActivation activation) const {
  DA_CHECK(x->rank() >= 1 && x->dim(-1) == features_,
           "LayerNorm input's last axis must be features");
  return Run(*x, 0, x, activation, stream);
}

absl::Status CudaLayerNorm::ForwardColumnsInPlace(DeviceTensor* x,
                                                  int64_t column,
                                                  cudaStream_t stream) const {
  return Run(*x, column, x, gpu::RowActivation::kNone, stream);
}

}  // namespace models
}  // namespace dilated
