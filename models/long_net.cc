#include "models/long_net.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "factory/status_macros.h"
#include "models/attention_core.h"
#include "models/init.h"

namespace dilated {
namespace models {

absl::Status LongNetConfig::Validate() const {
  if (num_encoder_layers < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "num_encoder_layers must be >= 1, got ", num_encoder_layers));
  }
  if (num_decoder_layers < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "num_decoder_layers must be >= 1, got ", num_decoder_layers));
  }
  return LayerConfig(/*is_encoder=*/true).Validate();
}

TransformerLayerConfig LongNetConfig::LayerConfig(bool is_encoder) const {
  TransformerLayerConfig config;
  config.d_model = d_model;
  config.nhead = nhead;
  config.segment_lengths = segment_lengths;
  config.dilation_rates = dilation_rates;
  config.dim_feedforward = dim_feedforward;
  config.activation = activation;
  config.layer_norm_eps = layer_norm_eps;
  config.variant = variant;
  config.normalize_group_sums = normalize_group_sums;
  config.attention_core = attention_core;
  config.communicator = communicator;
  config.seed = seed;
  if (num_encoder_layers >= 1 && num_decoder_layers >= 1) {
    config.gamma_init =
        is_encoder ? EncoderGammaInit(num_encoder_layers, num_decoder_layers)
                   : DecoderGammaInit(num_decoder_layers);
  }
  return config;
}

absl::StatusOr<std::unique_ptr<LongNet>> LongNet::Create(
    const LongNetConfig& config) {
  DA_RETURN_IF_ERROR(config.Validate());
  std::unique_ptr<LongNet> model(new LongNet(config));
  Rng rng(config.seed);
  const TransformerLayerConfig encoder_config = config.LayerConfig(true);
  const TransformerLayerConfig decoder_config = config.LayerConfig(false);
  for (int64_t i = 0; i < config.num_encoder_layers; ++i) {
    DA_ASSIGN_OR_RETURN(
        std::unique_ptr<DilatedTransformerEncoderLayer> layer,
        DilatedTransformerEncoderLayer::Create(encoder_config, &rng));
    model->encoder_.push_back(std::move(layer));
  }
  for (int64_t i = 0; i < config.num_decoder_layers; ++i) {
    DA_ASSIGN_OR_RETURN(
        std::unique_ptr<DilatedTransformerDecoderLayer> layer,
        DilatedTransformerDecoderLayer::Create(decoder_config, &rng));
    model->decoder_.push_back(std::move(layer));
  }
  return model;
}

absl::StatusOr<Tensor> LongNet::Forward(const Tensor& x, bool is_causal) {
  DA_RETURN_IF_ERROR(CheckLayerInput("x", x, config_.d_model,
                                     config_.segment_lengths,
                                     SequenceShards(config_.communicator)));
  // Each layer returns a new tensor: x itself is never copied.
  Tensor memory;
  const Tensor* encoded = &x;
  for (const auto& layer : encoder_) {
    DA_ASSIGN_OR_RETURN(memory, layer->Forward(*encoded, is_causal));
    encoded = &memory;
  }
  if (decoder_.empty()) return x;
  Tensor tgt;
  const Tensor* decoded = &x;
  for (const auto& layer : decoder_) {
    DA_ASSIGN_OR_RETURN(
        tgt, layer->Forward(*decoded, *encoded, is_causal, is_causal));
    decoded = &tgt;
  }
  return tgt;
}

void LongNet::AppendParameters(const std::string& prefix,
                               std::vector<NamedParameter>* out) {
  for (size_t i = 0; i < encoder_.size(); ++i) {
    encoder_[i]->AppendParameters(
        absl::StrCat(prefix, "encoder.layers.", i, "."), out);
  }
  for (size_t i = 0; i < decoder_.size(); ++i) {
    decoder_[i]->AppendParameters(
        absl::StrCat(prefix, "decoder.layers.", i, "."), out);
  }
}

}  // namespace models
}  // namespace dilated
