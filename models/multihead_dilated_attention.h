// File: multihead_dilated_attention.h
//
// MultiheadDilatedAttention: the reference's module of that name
// (docs/REFERENCE.md §7.2) with separate q/k/v projections, registered as
// "multihead_standard". State-dict names: q_proj.{weight,bias}, k_proj.*,
// v_proj.*, out_proj.*, and with layer_norm q_ln.*, k_ln.* (variant kFork) or
// norm.* (kUpstream).
//
// Forward (kFork): q = q_ln(q_proj(query)), k = k_ln(k_proj(key)),
// v = v_proj(value); x = dilated attention over the heads (channel c in head
// c / head_dim); y = out_proj(q_ln(x)). Without layer_norm the LayerNorms are
// skipped. kUpstream: no QK-LayerNorm, and norm instead of the second q_ln.
//
//   using dilated::models::MultiheadDilatedAttention;
//   dilated::models::MultiheadConfig config;  // embed_dim 768, 12 heads
//   absl::StatusOr<std::unique_ptr<MultiheadDilatedAttention>> mha =
//       MultiheadDilatedAttention::Create(config);

#ifndef MODELS_MULTIHEAD_DILATED_ATTENTION_H_
#define MODELS_MULTIHEAD_DILATED_ATTENTION_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/init.h"
#include "models/layer_norm.h"
#include "models/linear.h"
#include "models/multihead_attention.h"

namespace dilated {
namespace models {

class MultiheadDilatedAttention : public MultiheadAttention {
 public:
  // Returns a module initialised from config.seed, or InvalidArgument for a
  // bad config, NotFound for an unknown attention core.
  static absl::StatusOr<std::unique_ptr<MultiheadDilatedAttention>> Create(
      const MultiheadConfig& config);

  // As Create, drawing the initial weights from `rng`.
  static absl::StatusOr<std::unique_ptr<MultiheadDilatedAttention>> Create(
      const MultiheadConfig& config, Rng* rng);

  void Reset(uint64_t seed) override;
  // Re-initialises every parameter from `rng` (see MultiheadAttention::Reset).
  void Reset(Rng* rng);

  void AppendParameters(const std::string& prefix,
                        std::vector<NamedParameter>* out) override;

 private:
  MultiheadDilatedAttention(const MultiheadConfig& config,
                            std::unique_ptr<Attention> core);

  absl::StatusOr<Tensor> DoForward(const Tensor& query, const Tensor& key,
                                   const Tensor& value, bool key_is_query,
                                   bool value_is_query,
                                   bool is_causal) override;

  Linear q_proj_;
  Linear k_proj_;
  Linear v_proj_;
  Linear out_proj_;
  // kFork with layer_norm.
  std::optional<LayerNorm> q_ln_;
  std::optional<LayerNorm> k_ln_;
  // kUpstream with layer_norm.
  std::optional<LayerNorm> norm_;
};

}  // namespace models
}  // namespace dilated

#endif  // MODELS_MULTIHEAD_DILATED_ATTENTION_H_
