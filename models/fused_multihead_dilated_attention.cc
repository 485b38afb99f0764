#include "models/fused_multihead_dilated_attention.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "factory/status_macros.h"
#include "models/attention_core.h"

namespace dilated {
namespace models {

absl::StatusOr<std::unique_ptr<FusedMultiheadDilatedAttention>>
FusedMultiheadDilatedAttention::Create(const MultiheadConfig& config) {
  DA_RETURN_IF_ERROR(config.Validate());
  if (config.variant != MultiheadVariant::kFork) {
    return absl::InvalidArgumentError(
        "variant must be kFork for the fused-qkv module: the upstream library "
        "has no fused variant");
  }
  DA_ASSIGN_OR_RETURN(
      std::unique_ptr<Attention> core,
      CreateAttentionCore(config.attention_core, config.segment_lengths,
                          config.dilation_rates, config.communicator));
  std::unique_ptr<FusedMultiheadDilatedAttention> module(
      new FusedMultiheadDilatedAttention(config, std::move(core)));
  module->Reset(config.seed);
  return module;
}

FusedMultiheadDilatedAttention::FusedMultiheadDilatedAttention(
    const MultiheadConfig& config, std::unique_ptr<Attention> core)
    : MultiheadAttention(config, std::move(core)),
      qkv_proj_(config.embed_dim, 3 * config.embed_dim, config.bias),
      out_proj_(config.embed_dim, config.embed_dim, config.bias) {
  if (config.layer_norm) {
    q_ln_.emplace(config.embed_dim, config.layer_norm_eps);
    k_ln_.emplace(config.embed_dim, config.layer_norm_eps);
  }
}

void FusedMultiheadDilatedAttention::Reset(uint64_t seed) {
  Rng rng(seed);
  const int64_t e = config().embed_dim;
  const double gamma = config().gamma_init;
  XavierNormalRows(1.0, 0, e, &qkv_proj_.weight(), &rng);
  XavierNormalRows(1.0, e, 2 * e, &qkv_proj_.weight(), &rng);
  XavierNormalRows(gamma, 2 * e, 3 * e, &qkv_proj_.weight(), &rng);
  std::fill(qkv_proj_.bias().values.begin(), qkv_proj_.bias().values.end(),
            0.0f);
  out_proj_.Reset(gamma, &rng);
  if (q_ln_.has_value()) q_ln_->Reset();
  if (k_ln_.has_value()) k_ln_->Reset();
}

void FusedMultiheadDilatedAttention::AppendParameters(
    const std::string& prefix, std::vector<NamedParameter>* out) {
  qkv_proj_.AppendParameters(prefix + "qkv_proj.", out);
  out_proj_.AppendParameters(prefix + "out_proj.", out);
  if (q_ln_.has_value()) q_ln_->AppendParameters(prefix + "q_ln.", out);
  if (k_ln_.has_value()) k_ln_->AppendParameters(prefix + "k_ln.", out);
}

absl::StatusOr<Tensor> FusedMultiheadDilatedAttention::DoForward(
    const Tensor& query, const Tensor& key, const Tensor& value,
    bool key_is_query, bool value_is_query, bool is_causal) {
  const int64_t e = config().embed_dim;
  absl::StatusOr<Tensor> x;
  if (key_is_query && value_is_query) {
    const Tensor qkv = qkv_proj_.Forward(query);
    x = Attend(qkv, 0, qkv, e, qkv, 2 * e, is_causal);
  } else {
    const Tensor q = qkv_proj_.ForwardSlice(query, 0, e);
    const Tensor k = qkv_proj_.ForwardSlice(key, e, 2 * e);
    const Tensor v = qkv_proj_.ForwardSlice(value, 2 * e, 3 * e);
    x = Attend(q, 0, k, 0, v, 0, is_causal);
  }
  if (!x.ok()) return x.status();
  if (q_ln_.has_value()) *x = q_ln_->Forward(*x);
  return out_proj_.Forward(*x);
}

}  // namespace models
}  // namespace dilated
