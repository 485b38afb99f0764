// File: fused_multihead_dilated_attention.h
//
// FusedMultiheadDilatedAttention: the reference's
// ImprovedMultiheadDilatedAttention (docs/REFERENCE.md §7.3), one fused
// projection qkv_proj = Linear(E, 3E) whose output thirds are q | k | v,
// registered as "multihead_improved" and "multihead_auto". Its attention is the
// dilated attention over the sequence, the same function as every other module
// here (the reference attends across heads instead, docs/REFERENCE.md §5; not
// reproduced).
//
// State-dict names: qkv_proj.{weight,bias}, out_proj.*, and with layer_norm
// q_ln.*, k_ln.* (the reference creates k_ln but never uses it; it is loaded
// all the same so that its checkpoints load strictly).
//
// Forward: self-attention (key and value are the query object itself) projects
// once and splits the thirds; otherwise q comes from qkv_proj(query), k from
// the second third of qkv_proj(key), v from the last third of
// qkv_proj(value) (only the needed third is computed). No QK-LayerNorm;
// y = out_proj(q_ln(x)) with layer_norm, out_proj(x) without.

#ifndef MODELS_FUSED_MULTIHEAD_DILATED_ATTENTION_H_
#define MODELS_FUSED_MULTIHEAD_DILATED_ATTENTION_H_

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

class FusedMultiheadDilatedAttention : public MultiheadAttention {
 public:
  // Returns a module initialised from config.seed; InvalidArgument for a bad
  // config or variant kUpstream (the upstream library has no fused module),
  // NotFound for an unknown attention core.
  static absl::StatusOr<std::unique_ptr<FusedMultiheadDilatedAttention>> Create(
      const MultiheadConfig& config);

  // Re-initialises the parameters: rows [0, 2E) of qkv_proj (q and k) are
  // Xavier-normal with gain 1, each on its own E x E slice, rows [2E, 3E) (v)
  // and out_proj with gain gamma_init, biases zero, LayerNorms one and zero.
  void Reset(uint64_t seed) override;

  void AppendParameters(const std::string& prefix,
                        std::vector<NamedParameter>* out) override;

 private:
  FusedMultiheadDilatedAttention(const MultiheadConfig& config,
                                 std::unique_ptr<Attention> core);

  absl::StatusOr<Tensor> DoForward(const Tensor& query, const Tensor& key,
                                   const Tensor& value, bool key_is_query,
                                   bool value_is_query,
                                   bool is_causal) override;

  Linear qkv_proj_;
  Linear out_proj_;
  std::optional<LayerNorm> q_ln_;
  std::optional<LayerNorm> k_ln_;
};

}  // namespace models
}  // namespace dilated

#endif  // MODELS_FUSED_MULTIHEAD_DILATED_ATTENTION_H_
