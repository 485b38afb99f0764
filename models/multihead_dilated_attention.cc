#include "models/multihead_dilated_attention.h"

#include <utility>

#include "factory/status_macros.h"
#include "models/attention_core.h"

namespace dilated {
namespace models {

absl::StatusOr<std::unique_ptr<MultiheadDilatedAttention>>
MultiheadDilatedAttention::Create(const MultiheadConfig& config) {
  Rng rng(config.seed);
  return Create(config, &rng);
}

absl::StatusOr<std::unique_ptr<MultiheadDilatedAttention>>
MultiheadDilatedAttention::Create(const MultiheadConfig& config, Rng* rng) {
  DA_RETURN_IF_ERROR(config.Validate());
  DA_ASSIGN_OR_RETURN(
      std::unique_ptr<Attention> core,
      CreateAttentionCore(config.attention_core, config.segment_lengths,
                          config.dilation_rates, config.communicator));
  std::unique_ptr<MultiheadDilatedAttention> module(
      new MultiheadDilatedAttention(config, std::move(core)));
  module->Reset(rng);
  return module;
}

MultiheadDilatedAttention::MultiheadDilatedAttention(
    const MultiheadConfig& config, std::unique_ptr<Attention> core)
    : MultiheadAttention(config, std::move(core)),
      q_proj_(config.embed_dim, config.embed_dim, config.bias),
      k_proj_(config.embed_dim, config.embed_dim, config.bias),
      v_proj_(config.embed_dim, config.embed_dim, config.bias),
      out_proj_(config.embed_dim, config.embed_dim, config.bias) {
  if (!config.layer_norm) return;
  if (config.variant == MultiheadVariant::kFork) {
    q_ln_.emplace(config.embed_dim, config.layer_norm_eps);
    k_ln_.emplace(config.embed_dim, config.layer_norm_eps);
  } else {
    norm_.emplace(config.embed_dim, config.layer_norm_eps);
  }
}

void MultiheadDilatedAttention::Reset(uint64_t seed) {
  Rng rng(seed);
  Reset(&rng);
}

void MultiheadDilatedAttention::Reset(Rng* rng) {
  const double gamma = config().gamma_init;
  q_proj_.Reset(1.0, rng);
  k_proj_.Reset(1.0, rng);
  v_proj_.Reset(gamma, rng);
  out_proj_.Reset(gamma, rng);
  for (std::optional<LayerNorm>* ln : {&q_ln_, &k_ln_, &norm_}) {
    if (ln->has_value()) (*ln)->Reset();
  }
}

void MultiheadDilatedAttention::AppendParameters(
    const std::string& prefix, std::vector<NamedParameter>* out) {
  q_proj_.AppendParameters(prefix + "q_proj.", out);
  k_proj_.AppendParameters(prefix + "k_proj.", out);
  v_proj_.AppendParameters(prefix + "v_proj.", out);
  // Upstream registers norm before out_proj, the fork q_ln/k_ln after it.
  if (norm_.has_value()) norm_->AppendParameters(prefix + "norm.", out);
  out_proj_.AppendParameters(prefix + "out_proj.", out);
  if (q_ln_.has_value()) q_ln_->AppendParameters(prefix + "q_ln.", out);
  if (k_ln_.has_value()) k_ln_->AppendParameters(prefix + "k_ln.", out);
}

absl::StatusOr<Tensor> MultiheadDilatedAttention::DoForward(
    const Tensor& query, const Tensor& key, const Tensor& value,
    bool key_is_query, bool value_is_query, bool is_causal) {
  Tensor q = q_proj_.Forward(query);
  Tensor k = k_proj_.Forward(key);
  Tensor v = v_proj_.Forward(value);
  if (q_ln_.has_value()) {
    q = q_ln_->Forward(q);
    k = k_ln_->Forward(k);
  }
  DA_ASSIGN_OR_RETURN(Tensor x, Attend(q, 0, k, 0, v, 0, is_causal));
  if (q_ln_.has_value()) x = q_ln_->Forward(x);
  if (norm_.has_value()) x = norm_->Forward(x);
  return out_proj_.Forward(x);
}

}  // namespace models
}  // namespace dilated
