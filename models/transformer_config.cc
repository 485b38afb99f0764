#include "models/transformer_config.h"

#include "absl/strings/str_cat.h"
#include "factory/status_macros.h"

namespace dilated {
namespace models {

absl::Status TransformerLayerConfig::Validate() const {
  if (d_model <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("d_model must be positive, got ", d_model));
  }
  if (nhead <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("nhead must be positive, got ", nhead));
  }
  if (dim_feedforward <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dim_feedforward must be positive, got ", dim_feedforward));
  }
  return AttentionConfig(/*layer_norm=*/true).Validate();
}

MultiheadConfig TransformerLayerConfig::AttentionConfig(bool layer_norm) const {
  MultiheadConfig config;
  config.embed_dim = d_model;
  config.num_heads = nhead;
  config.segment_lengths = segment_lengths;
  config.dilation_rates = dilation_rates;
  config.bias = true;
  config.layer_norm = layer_norm;
  config.layer_norm_eps = layer_norm_eps;
  config.gamma_init = gamma_init;
  config.variant = variant;
  config.normalize_group_sums = normalize_group_sums;
  config.attention_core = attention_core;
  config.communicator = communicator;
  config.seed = seed;
  return config;
}

absl::Status CheckLayerInput(const char* name, const Tensor& t, int64_t d_model,
                             const std::vector<int64_t>& segment_lengths,
                             int64_t shards) {
  if (t.rank() != 3 || t.dim(0) <= 0 || t.dim(1) <= 0 || t.dim(2) != d_model) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, " must be [batch, seq_len, d_model] with d_model = ", d_model,
        " and positive batch and seq_len, got ", t.ShapeString()));
  }
  const int64_t seq_len = t.dim(1) * shards;
  for (size_t i = 0; i < segment_lengths.size(); ++i) {
    if (seq_len % segment_lengths[i] != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("sequence length ", seq_len, " of ", name,
                       " is not divisible by segment_lengths[", i,
                       "] = ", segment_lengths[i]));
    }
  }
  return absl::OkStatus();
}

}  // namespace models
}  // namespace dilated
