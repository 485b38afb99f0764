// File: decoder_layer.h
//
// DilatedTransformerDecoderLayer (docs/REFERENCE.md §8): pre-LayerNorm
// self-attention WITHOUT the attention's LayerNorms, pre-LayerNorm
// cross-attention over the memory WITH them, and a feed-forward block with a
// sub-LayerNorm:
//
//   x = x + self_attn(norm1(x))                       (layer_norm off)
//   x = x + multihead_attn(norm2(x), memory, memory)  (layer_norm on)
//   x = x + linear2(norm4(act(linear1(norm3(x)))))
//
// (The reference's comments say the cross-attention should be the one without
// a sub-LayerNorm; its code, which trained checkpoints follow, does the
// above.) State-dict names: norm1.*, self_attn.*, norm2.*, multihead_attn.*,
// norm3.*, linear1.*, norm4.*, linear2.*. Inference only.

#ifndef MODELS_DECODER_LAYER_H_
#define MODELS_DECODER_LAYER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/feed_forward.h"
#include "models/init.h"
#include "models/layer_norm.h"
#include "models/multihead_dilated_attention.h"
#include "models/transformer_config.h"

namespace dilated {
namespace models {

class DilatedTransformerDecoderLayer : public Module {
 public:
  // Returns a layer initialised from config.seed; InvalidArgument for a bad
  // config, NotFound for an unknown attention core.
  static absl::StatusOr<std::unique_ptr<DilatedTransformerDecoderLayer>> Create(
      const TransformerLayerConfig& config);

  // As Create, drawing the initial weights from `rng`.
  static absl::StatusOr<std::unique_ptr<DilatedTransformerDecoderLayer>> Create(
      const TransformerLayerConfig& config, Rng* rng);

  // Returns the layer's output for tgt [batch, seq, d_model] attending to
  // memory (the same shape and dtype: the dilated cross-attention pairs equal
  // positions' segments). InvalidArgument naming tgt or memory otherwise.
  absl::StatusOr<Tensor> Forward(const Tensor& tgt, const Tensor& memory,
                                 bool tgt_is_causal, bool memory_is_causal);

  const TransformerLayerConfig& config() const { return config_; }

  void AppendParameters(const std::string& prefix,
                        std::vector<NamedParameter>* out) override;

 private:
  DilatedTransformerDecoderLayer(
      const TransformerLayerConfig& config,
      std::unique_ptr<MultiheadDilatedAttention> self_attn,
      std::unique_ptr<MultiheadDilatedAttention> multihead_attn);

  TransformerLayerConfig config_;
  LayerNorm norm1_;
  std::unique_ptr<MultiheadDilatedAttention> self_attn_;
  LayerNorm norm2_;
  std::unique_ptr<MultiheadDilatedAttention> multihead_attn_;
  FeedForwardBlock feed_forward_;
};

}  // namespace models
}  // namespace dilated

#endif  // MODELS_DECODER_LAYER_H_
