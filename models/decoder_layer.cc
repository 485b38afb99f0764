#include "models/decoder_layer.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "factory/status_macros.h"
#include "models/attention_core.h"
#include "models/ops.h"

namespace dilated {
namespace models {

absl::StatusOr<std::unique_ptr<DilatedTransformerDecoderLayer>>
DilatedTransformerDecoderLayer::Create(const TransformerLayerConfig& config) {
  Rng rng(config.seed);
  return Create(config, &rng);
}

absl::StatusOr<std::unique_ptr<DilatedTransformerDecoderLayer>>
DilatedTransformerDecoderLayer::Create(const TransformerLayerConfig& config,
                                       Rng* rng) {
  DA_RETURN_IF_ERROR(config.Validate());
  DA_ASSIGN_OR_RETURN(std::unique_ptr<MultiheadDilatedAttention> self_attn,
                      MultiheadDilatedAttention::Create(
                          config.AttentionConfig(/*layer_norm=*/false), rng));
  DA_ASSIGN_OR_RETURN(std::unique_ptr<MultiheadDilatedAttention> multihead_attn,
                      MultiheadDilatedAttention::Create(
                          config.AttentionConfig(/*layer_norm=*/true), rng));
  std::unique_ptr<DilatedTransformerDecoderLayer> layer(
      new DilatedTransformerDecoderLayer(config, std::move(self_attn),
                                         std::move(multihead_attn)));
  layer->feed_forward_.Reset(config.gamma_init, rng);
  return layer;
}

DilatedTransformerDecoderLayer::DilatedTransformerDecoderLayer(
    const TransformerLayerConfig& config,
    std::unique_ptr<MultiheadDilatedAttention> self_attn,
    std::unique_ptr<MultiheadDilatedAttention> multihead_attn)
    : config_(config),
      norm1_(config.d_model, config.layer_norm_eps),
      self_attn_(std::move(self_attn)),
      norm2_(config.d_model, config.layer_norm_eps),
      multihead_attn_(std::move(multihead_attn)),
      feed_forward_(config.d_model, config.dim_feedforward, config.activation,
                    config.layer_norm_eps, "norm3", "norm4") {}

absl::StatusOr<Tensor> DilatedTransformerDecoderLayer::Forward(
    const Tensor& tgt, const Tensor& memory, bool tgt_is_causal,
    bool memory_is_causal) {
  DA_RETURN_IF_ERROR(CheckLayerInput("tgt", tgt, config_.d_model,
                                     config_.segment_lengths,
                                     SequenceShards(config_.communicator)));
  if (memory.shape() != tgt.shape() || memory.dtype() != tgt.dtype()) {
    return absl::InvalidArgumentError(
        absl::StrCat("memory must have the shape and dtype of tgt ",
                     tgt.ShapeString(), " ", DTypeName(tgt.dtype()), ", got ",
                     memory.ShapeString(), " ", DTypeName(memory.dtype())));
  }
  // tgt + self-attention, in the buffer of the attention's output.
  DA_ASSIGN_OR_RETURN(Tensor x,
                      self_attn_->Forward(norm1_.Forward(tgt), tgt_is_causal));
  AddInPlace(tgt, &x);
  {
    const Tensor normed = norm2_.Forward(x);
    DA_ASSIGN_OR_RETURN(
        Tensor attended,
        multihead_attn_->Forward(normed, memory, memory, memory_is_causal));
    AddInPlace(attended, &x);
  }
  AddInPlace(feed_forward_.Forward(x), &x);
  return x;
}

void DilatedTransformerDecoderLayer::AppendParameters(
    const std::string& prefix, std::vector<NamedParameter>* out) {
  norm1_.AppendParameters(prefix + "norm1.", out);
  self_attn_->AppendParameters(prefix + "self_attn.", out);
  norm2_.AppendParameters(prefix + "norm2.", out);
  multihead_attn_->AppendParameters(prefix + "multihead_attn.", out);
  feed_forward_.AppendParameters(prefix, out);
}

}  // namespace models
}  // namespace dilated
