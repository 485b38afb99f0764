#include "models/cuda/cuda_multihead.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "attention/registry.h"
#include "base/cuda_util.h"
#include "factory/status_macros.h"
#include "models/attention_core.h"
#include "models/cuda/device_ops.h"
#include "models/fused_multihead_dilated_attention.h"

namespace dilated {
namespace models {
namespace {

// Returns the [batch, seq, heads, head_dim] CUDA view of columns [column,
// column + heads * head_dim) of the [batch, seq, width] tensor `t`.
TensorView DeviceHeadView(const DeviceTensor& t, int64_t column, int64_t heads,
                          int64_t head_dim) {
  const int64_t width = t.dim(2);
  TensorView view;
  view.data =
      static_cast<char*>(t.mutable_data()) + column * DTypeSize(t.dtype());
  view.dtype = t.dtype();
  view.device = Device::Cuda(t.device());
  view.rank = 4;
  view.shape[0] = t.dim(0);
  view.shape[1] = t.dim(1);
  view.shape[2] = heads;
  view.shape[3] = head_dim;
  view.strides[0] = t.dim(1) * width;
  view.strides[1] = width;
  view.strides[2] = head_dim;
  view.strides[3] = 1;
  return view;
}

}  // namespace

std::string DefaultCudaAttentionCoreName() {
  const std::vector<std::string> names = RegisteredAttentionNames();
  const bool has_auto =
      std::find(names.begin(), names.end(), "auto") != names.end();
  return has_auto ? "auto" : DefaultAttentionCoreName();
}

absl::Status CheckDeviceInput(const char* name, const DeviceTensor& t,
                              int64_t d_model, DType dtype, int device,
                              const std::vector<int64_t>& segment_lengths) {
  if (t.rank() != 3 || t.dim(2) != d_model || t.dim(0) <= 0 || t.dim(1) <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, " must be [batch, seq_len, ", d_model,
        "] with positive batch and seq_len, got ", t.ShapeString()));
  }
  if (t.dtype() != dtype) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ".dtype is ", DTypeName(t.dtype()),
                     " but the model holds ", DTypeName(dtype), " weights"));
  }
  if (t.device() != device) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, " is on cuda:", t.device(), " but the model on cuda:", device));
  }
  for (size_t i = 0; i < segment_lengths.size(); ++i) {
    if (t.dim(1) % segment_lengths[i] != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("sequence length ", t.dim(1), " of ", name,
                       " is not divisible by segment_lengths[", i,
                       "] = ", segment_lengths[i]));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<CudaMultiheadAttention>>
CudaMultiheadAttention::Upload(MultiheadAttention& host, DType dtype,
                               int device, cudaStream_t stream) {
  DA_ASSIGN_OR_RETURN(const CudaPlacement placement, PlaceOn(device, dtype));
  const bool fused =
      dynamic_cast<FusedMultiheadDilatedAttention*>(&host) != nullptr;
  return Create(host.config(), fused, LookupParameters(host), "", placement,
                stream);
}

absl::StatusOr<std::unique_ptr<CudaMultiheadAttention>>
CudaMultiheadAttention::Create(const MultiheadConfig& config, bool fused,
                               const ParameterLookup& params,
                               const std::string& prefix,
                               const CudaPlacement& placement,
                               cudaStream_t stream) {
  DA_RETURN_IF_ERROR(config.Validate());
  std::unique_ptr<CudaMultiheadAttention> module(new CudaMultiheadAttention());
  module->config_ = config;
  module->placement_ = placement;
  module->qk_norms_ = !fused;
  DA_ASSIGN_OR_RETURN(
      module->core_,
      CreateAttentionCore(config.attention_core.empty()
                              ? DefaultCudaAttentionCoreName()
                              : config.attention_core,
                          config.segment_lengths, config.dilation_rates));
  const bool bias = config.bias;
  // The separate projections are stacked into one layer: a self-attention
  // then multiplies its input once, as the fused module does.
  if (fused) {
    DA_ASSIGN_OR_RETURN(module->qkv_proj_,
                        CudaLinear::Upload(params, prefix + "qkv_proj.", bias,
                                           placement, stream));
  } else {
    DA_ASSIGN_OR_RETURN(
        module->qkv_proj_,
        CudaLinear::UploadStacked(
            params,
            {prefix + "q_proj.", prefix + "k_proj.", prefix + "v_proj."}, bias,
            placement, stream));
  }
  DA_ASSIGN_OR_RETURN(module->out_proj_,
                      CudaLinear::Upload(params, prefix + "out_proj.", bias,
                                         placement, stream));
  if (config.layer_norm) {
    const double eps = config.layer_norm_eps;
    if (config.variant == MultiheadVariant::kFork) {
      DA_ASSIGN_OR_RETURN(module->q_ln_,
                          CudaLayerNorm::Upload(params, prefix + "q_ln.", eps,
                                                placement, stream));
      DA_ASSIGN_OR_RETURN(module->k_ln_,
                          CudaLayerNorm::Upload(params, prefix + "k_ln.", eps,
                                                placement, stream));
    } else {
      DA_ASSIGN_OR_RETURN(module->norm_,
                          CudaLayerNorm::Upload(params, prefix + "norm.", eps,
                                                placement, stream));
    }
  }
  return module;
}

absl::StatusOr<DeviceTensor> CudaMultiheadAttention::Forward(
    const DeviceTensor& query, const DeviceTensor& key,
    const DeviceTensor& value, bool is_causal, cudaStream_t stream,
    const DeviceTensor* residual) {
  const int64_t e = config_.embed_dim;
  for (const auto& [name, t] :
       {std::pair<const char*, const DeviceTensor*>{"query", &query},
        {"key", &key},
        {"value", &value}}) {
    DA_RETURN_IF_ERROR(CheckDeviceInput(name, *t, e, placement_.dtype,
                                        placement_.device,
                                        config_.segment_lengths));
    if (t->shape() != query.shape()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "batch size and sequence length must match for query, key and "
          "value; got query=",
          query.ShapeString(), ", key=", key.ShapeString(),
          ", value=", value.ShapeString()));
    }
  }
  absl::StatusOr<DeviceTensor> x;
  if (&key == &query && &value == &query) {
    DA_ASSIGN_OR_RETURN(DeviceTensor qkv, qkv_proj_.Forward(query, stream));
    if (qk_norms_ && q_ln_.has_value()) {
      DA_RETURN_IF_ERROR(q_ln_->ForwardColumnsInPlace(&qkv, 0, stream));
      DA_RETURN_IF_ERROR(k_ln_->ForwardColumnsInPlace(&qkv, e, stream));
    }
    x = Attend(qkv, 0, qkv, e, qkv, 2 * e, is_causal, stream);
  } else {
    DA_ASSIGN_OR_RETURN(DeviceTensor q,
                        qkv_proj_.ForwardSlice(query, 0, e, nullptr, stream));
    if (qk_norms_ && q_ln_.has_value()) {
      DA_RETURN_IF_ERROR(q_ln_->ForwardInPlace(&q, stream));
    }
    if (&value == &key) {
      DA_ASSIGN_OR_RETURN(DeviceTensor kv, qkv_proj_.ForwardSlice(
                                               key, e, 3 * e, nullptr, stream));
      if (qk_norms_ && k_ln_.has_value()) {
        DA_RETURN_IF_ERROR(k_ln_->ForwardColumnsInPlace(&kv, 0, stream));
      }
      x = Attend(q, 0, kv, 0, kv, e, is_causal, stream);
    } else {
      DA_ASSIGN_OR_RETURN(DeviceTensor k, qkv_proj_.ForwardSlice(
                                              key, e, 2 * e, nullptr, stream));
      DA_ASSIGN_OR_RETURN(
          DeviceTensor v,
          qkv_proj_.ForwardSlice(value, 2 * e, 3 * e, nullptr, stream));
      if (qk_norms_ && k_ln_.has_value()) {
        DA_RETURN_IF_ERROR(k_ln_->ForwardInPlace(&k, stream));
      }
      x = Attend(q, 0, k, 0, v, 0, is_causal, stream);
    }
  }
  if (!x.ok()) return x.status();
  if (q_ln_.has_value()) DA_RETURN_IF_ERROR(q_ln_->ForwardInPlace(&*x, stream));
  if (norm_.has_value()) DA_RETURN_IF_ERROR(norm_->ForwardInPlace(&*x, stream));
  if (residual != nullptr) return out_proj_.ForwardAdd(*x, *residual, stream);
  return out_proj_.Forward(*x, stream);
}

absl::StatusOr<DeviceTensor> CudaMultiheadAttention::Attend(
    const DeviceTensor& q, int64_t q_column, const DeviceTensor& k,
    int64_t k_column, const DeviceTensor& v, int64_t v_column, bool is_causal,
    cudaStream_t stream) {
  const int64_t heads = config_.num_heads;
  const int64_t head_dim = config_.head_dim();
  DA_ASSIGN_OR_RETURN(
      DeviceTensor out,
      DeviceTensor::Empty(q.dtype(), {q.dim(0), q.dim(1), config_.embed_dim},
                          q.device(), stream));
  ScopedCudaDevice scoped(q.device());
  DA_RETURN_IF_ERROR(scoped.status());
  ForwardOptions options;
  options.is_causal = is_causal;
  options.stream = stream;
  {
    ScopedStage stage(placement_.stage_timer.get(), Stage::kAttention, stream);
    DA_RETURN_IF_ERROR(stage.status());
    DA_RETURN_IF_ERROR(
        core_->Forward(DeviceHeadView(q, q_column, heads, head_dim),
                       DeviceHeadView(k, k_column, heads, head_dim),
                       DeviceHeadView(v, v_column, heads, head_dim),
                       DeviceHeadView(out, 0, heads, head_dim), options));
  }
  if (config_.normalize_group_sums) {
    DA_RETURN_IF_ERROR(
        CudaStatus(gpu::NormalizeGroupSums(
                       out.mutable_data(), out.dim(0), out.dim(1), out.dim(2),
                       static_cast<int64_t>(config_.segment_lengths.size()),
                       out.dtype(), stream),
                   "group-sum kernel"));
  }
  return out;
}

}  // namespace models
}  // namespace dilated
