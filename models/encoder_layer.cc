#include "models/encoder_layer.h"

#include <utility>

#include "factory/status_macros.h"
#include "models/attention_core.h"
#include "models/ops.h"

namespace dilated {
namespace models {

absl::StatusOr<std::unique_ptr<DilatedTransformerEncoderLayer>>
DilatedTransformerEncoderLayer::Create(const TransformerLayerConfig& config) {
  Rng rng(config.seed);
  return Create(config, &rng);
}

absl::StatusOr<std::unique_ptr<DilatedTransformerEncoderLayer>>
DilatedTransformerEncoderLayer::Create(const TransformerLayerConfig& config,
                                       Rng* rng) {
  DA_RETURN_IF_ERROR(config.Validate());
  DA_ASSIGN_OR_RETURN(std::unique_ptr<MultiheadDilatedAttention> self_attn,
                      MultiheadDilatedAttention::Create(
                          config.AttentionConfig(/*layer_norm=*/true), rng));
  std::unique_ptr<DilatedTransformerEncoderLayer> layer(
      new DilatedTransformerEncoderLayer(config, std::move(self_attn)));
  layer->feed_forward_.Reset(config.gamma_init, rng);
  return layer;
}

DilatedTransformerEncoderLayer::DilatedTransformerEncoderLayer(
    const TransformerLayerConfig& config,
    std::unique_ptr<MultiheadDilatedAttention> self_attn)
    : config_(config),
      norm1_(config.d_model, config.layer_norm_eps),
      self_attn_(std::move(self_attn)),
      feed_forward_(config.d_model, config.dim_feedforward, config.activation,
                    config.layer_norm_eps, "norm2", "norm3") {}

absl::StatusOr<Tensor> DilatedTransformerEncoderLayer::Forward(
    const Tensor& src, bool is_causal) {
  DA_RETURN_IF_ERROR(CheckLayerInput("src", src, config_.d_model,
                                     config_.segment_lengths,
                                     SequenceShards(config_.communicator)));
  Tensor x = norm1_.Forward(src);
  DA_ASSIGN_OR_RETURN(x, self_attn_->Forward(x, is_causal));
  AddInPlace(src, &x);  // src + attended, in the buffer of attended
  AddInPlace(feed_forward_.Forward(x), &x);
  return x;
}

void DilatedTransformerEncoderLayer::AppendParameters(
    const std::string& prefix, std::vector<NamedParameter>* out) {
  norm1_.AppendParameters(prefix + "norm1.", out);
  self_attn_->AppendParameters(prefix + "self_attn.", out);
  feed_forward_.AppendParameters(prefix, out);
}

}  // namespace models
}  // namespace dilated
