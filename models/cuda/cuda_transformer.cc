#include "models/cuda/cuda_transformer.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/cuda_util.h"
#include "factory/status_macros.h"
#include "models/cuda/device_ops.h"

namespace dilated {
namespace models {

absl::StatusOr<CudaFeedForward> CudaFeedForward::Create(
    const TransformerLayerConfig& config, const ParameterLookup& params,
    const std::string& prefix, const std::string& pre_norm_name,
    const std::string& sub_norm_name, const CudaPlacement& placement,
    cudaStream_t stream) {
  CudaFeedForward block;
  block.activation_ = config.activation;
  const double eps = config.layer_norm_eps;
  DA_ASSIGN_OR_RETURN(block.pre_norm_, CudaLayerNorm::Upload(
                                           params, prefix + pre_norm_name + ".",
                                           eps, placement, stream));
  DA_ASSIGN_OR_RETURN(
      block.linear1_,
      CudaLinear::Upload(params, prefix + "linear1.", true, placement, stream));
  DA_ASSIGN_OR_RETURN(block.sub_norm_, CudaLayerNorm::Upload(
                                           params, prefix + sub_norm_name + ".",
                                           eps, placement, stream));
  DA_ASSIGN_OR_RETURN(
      block.linear2_,
      CudaLinear::Upload(params, prefix + "linear2.", true, placement, stream));
  return block;
}

absl::StatusOr<DeviceTensor> CudaFeedForward::ForwardResidual(
    const DeviceTensor& x, cudaStream_t stream) const {
  DeviceTensor hidden;
  {
    DA_ASSIGN_OR_RETURN(const DeviceTensor normed,
                        pre_norm_.Forward(x, stream));
    DA_ASSIGN_OR_RETURN(hidden, linear1_.Forward(normed, stream));
  }
  DA_RETURN_IF_ERROR(sub_norm_.ForwardInPlace(&hidden, stream,
                                              activation_ == Activation::kGelu
                                                  ? gpu::RowActivation::kGelu
                                                  : gpu::RowActivation::kRelu));
  return linear2_.ForwardAdd(hidden, x, stream);
}

absl::StatusOr<std::unique_ptr<CudaEncoderLayer>> CudaEncoderLayer::Upload(
    DilatedTransformerEncoderLayer& host, DType dtype, int device,
    cudaStream_t stream) {
  DA_ASSIGN_OR_RETURN(const CudaPlacement placement, PlaceOn(device, dtype));
  return Create(host.config(), LookupParameters(host), "", placement, stream);
}

absl::StatusOr<std::unique_ptr<CudaEncoderLayer>> CudaEncoderLayer::Create(
    const TransformerLayerConfig& config, const ParameterLookup& params,
    const std::string& prefix, const CudaPlacement& placement,
    cudaStream_t stream) {
  DA_RETURN_IF_ERROR(config.Validate());
  std::unique_ptr<CudaEncoderLayer> layer(new CudaEncoderLayer());
  layer->config_ = config;
  layer->placement_ = placement;
  DA_ASSIGN_OR_RETURN(
      layer->norm1_,
      CudaLayerNorm::Upload(params, prefix + "norm1.", config.layer_norm_eps,
                            placement, stream));
  DA_ASSIGN_OR_RETURN(
      layer->self_attn_,
      CudaMultiheadAttention::Create(
          config.AttentionConfig(/*layer_norm=*/true),
          /*fused=*/false, params, prefix + "self_attn.", placement, stream));
  DA_ASSIGN_OR_RETURN(layer->feed_forward_,
                      CudaFeedForward::Create(config, params, prefix, "norm2",
                                              "norm3", placement, stream));
  return layer;
}

absl::StatusOr<DeviceTensor> CudaEncoderLayer::Forward(const DeviceTensor& src,
                                                       bool is_causal,
                                                       cudaStream_t stream) {
  DA_RETURN_IF_ERROR(CheckDeviceInput("src", src, config_.d_model,
                                      placement_.dtype, placement_.device,
                                      config_.segment_lengths));
  DeviceTensor x;
  {
    DA_ASSIGN_OR_RETURN(const DeviceTensor normed, norm1_.Forward(src, stream));
    DA_ASSIGN_OR_RETURN(x,
                        self_attn_->Forward(normed, is_causal, stream, &src));
  }
  return feed_forward_.ForwardResidual(x, stream);
}

absl::StatusOr<std::unique_ptr<CudaDecoderLayer>> CudaDecoderLayer::Upload(
    DilatedTransformerDecoderLayer& host, DType dtype, int device,
    cudaStream_t stream) {
  DA_ASSIGN_OR_RETURN(const CudaPlacement placement, PlaceOn(device, dtype));
  return Create(host.config(), LookupParameters(host), "", placement, stream);
}

absl::StatusOr<std::unique_ptr<CudaDecoderLayer>> CudaDecoderLayer::Create(
    const TransformerLayerConfig& config, const ParameterLookup& params,
    const std::string& prefix, const CudaPlacement& placement,
    cudaStream_t stream) {
  DA_RETURN_IF_ERROR(config.Validate());
  std::unique_ptr<CudaDecoderLayer> layer(new CudaDecoderLayer());
  layer->config_ = config;
  layer->placement_ = placement;
  const double eps = config.layer_norm_eps;
  DA_ASSIGN_OR_RETURN(
      layer->norm1_,
      CudaLayerNorm::Upload(params, prefix + "norm1.", eps, placement, stream));
  DA_ASSIGN_OR_RETURN(
      layer->self_attn_,
      CudaMultiheadAttention::Create(
          config.AttentionConfig(/*layer_norm=*/false),
          /*fused=*/false, params, prefix + "self_attn.", placement, stream));
  DA_ASSIGN_OR_RETURN(
      layer->norm2_,
      CudaLayerNorm::Upload(params, prefix + "norm2.", eps, placement, stream));
  DA_ASSIGN_OR_RETURN(layer->multihead_attn_,
                      CudaMultiheadAttention::Create(
                          config.AttentionConfig(/*layer_norm=*/true),
                          /*fused=*/false, params, prefix + "multihead_attn.",
                          placement, stream));
  DA_ASSIGN_OR_RETURN(layer->feed_forward_,
                      CudaFeedForward::Create(config, params, prefix, "norm3",
                                              "norm4", placement, stream));
  return layer;
}

absl::StatusOr<DeviceTensor> CudaDecoderLayer::Forward(
    const DeviceTensor& tgt, const DeviceTensor& memory, bool tgt_is_causal,
    bool memory_is_causal, cudaStream_t stream) {
  DA_RETURN_IF_ERROR(CheckDeviceInput("tgt", tgt, config_.d_model,
                                      placement_.dtype, placement_.device,
                                      config_.segment_lengths));
  if (memory.shape() != tgt.shape() || memory.dtype() != tgt.dtype()) {
    return absl::InvalidArgumentError(
        absl::StrCat("memory must have the shape and dtype of tgt ",
                     tgt.ShapeString(), " ", DTypeName(tgt.dtype()), ", got ",
                     memory.ShapeString(), " ", DTypeName(memory.dtype())));
  }
  DeviceTensor x;
  {
    DA_ASSIGN_OR_RETURN(const DeviceTensor normed, norm1_.Forward(tgt, stream));
    DA_ASSIGN_OR_RETURN(
        x, self_attn_->Forward(normed, tgt_is_causal, stream, &tgt));
  }
  {
    DA_ASSIGN_OR_RETURN(const DeviceTensor normed, norm2_.Forward(x, stream));
    DA_ASSIGN_OR_RETURN(
        x, multihead_attn_->Forward(normed, memory, memory, memory_is_causal,
                                    stream, &x));
  }
  return feed_forward_.ForwardResidual(x, stream);
}

absl::StatusOr<std::unique_ptr<CudaLongNet>> CudaLongNet::Upload(
    LongNet& host, DType dtype, int device, cudaStream_t stream) {
  std::unique_ptr<CudaLongNet> model(new CudaLongNet());
  model->config_ = host.config();
  DA_ASSIGN_OR_RETURN(model->placement_, PlaceOn(device, dtype));
  const ParameterLookup params = LookupParameters(host);
  const LongNetConfig& config = model->config_;
  for (int64_t i = 0; i < config.num_encoder_layers; ++i) {
    DA_ASSIGN_OR_RETURN(std::unique_ptr<CudaEncoderLayer> layer,
                        CudaEncoderLayer::Create(
                            config.LayerConfig(/*is_encoder=*/true), params,
                            absl::StrCat("encoder.layers.", i, "."),
                            model->placement_, stream));
    model->encoder_.push_back(std::move(layer));
  }
  for (int64_t i = 0; i < config.num_decoder_layers; ++i) {
    DA_ASSIGN_OR_RETURN(std::unique_ptr<CudaDecoderLayer> layer,
                        CudaDecoderLayer::Create(
                            config.LayerConfig(/*is_encoder=*/false), params,
                            absl::StrCat("decoder.layers.", i, "."),
                            model->placement_, stream));
    model->decoder_.push_back(std::move(layer));
  }
  return model;
}

absl::StatusOr<DeviceTensor> CudaLongNet::Forward(const DeviceTensor& x,
                                                  bool is_causal,
                                                  cudaStream_t stream) {
  DA_RETURN_IF_ERROR(CheckDeviceInput("x", x, config_.d_model, placement_.dtype,
                                      placement_.device,
                                      config_.segment_lengths));
  DeviceTensor memory;
  for (size_t i = 0; i < encoder_.size(); ++i) {
    DA_ASSIGN_OR_RETURN(
        memory, encoder_[i]->Forward(i == 0 ? x : memory, is_causal, stream));
  }
  DeviceTensor tgt;
  for (size_t i = 0; i < decoder_.size(); ++i) {
    DA_ASSIGN_OR_RETURN(
        tgt, decoder_[i]->Forward(i == 0 ? x : tgt, memory, is_causal,
                                  is_causal, stream));
  }
  return tgt;
}

}  // namespace models
}  // namespace dilated
