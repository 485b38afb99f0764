// File: encoder_layer.h
//
// DilatedTransformerEncoderLayer (docs/REFERENCE.md §8): pre-LayerNorm
// self-attention and a feed-forward block with a sub-LayerNorm (MAGNETO):
//
//   x = x + self_attn(norm1(x))                       (layer_norm on)
//   x = x + linear2(norm3(act(linear1(norm2(x)))))
//
// State-dict names: norm1.*, self_attn.* (MultiheadDilatedAttention),
// norm2.*, linear1.*, norm3.*, linear2.*. Inference only (dropout is the
// identity).
//
//   using dilated::models::DilatedTransformerEncoderLayer;
//   dilated::models::TransformerLayerConfig config;
//   absl::StatusOr<std::unique_ptr<DilatedTransformerEncoderLayer>> layer =
//       DilatedTransformerEncoderLayer::Create(config);
//   absl::StatusOr<dilated::models::Tensor> y =
//       (*layer)->Forward(x, /*is_causal=*/true);

#ifndef MODELS_ENCODER_LAYER_H_
#define MODELS_ENCODER_LAYER_H_

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

class DilatedTransformerEncoderLayer : public Module {
 public:
  // Returns a layer initialised from config.seed; InvalidArgument for a bad
  // config, NotFound for an unknown attention core.
  static absl::StatusOr<std::unique_ptr<DilatedTransformerEncoderLayer>> Create(
      const TransformerLayerConfig& config);

  // As Create, drawing the initial weights from `rng`.
  static absl::StatusOr<std::unique_ptr<DilatedTransformerEncoderLayer>> Create(
      const TransformerLayerConfig& config, Rng* rng);

  // Returns the layer's output for src [batch, seq, d_model], or
  // InvalidArgument naming src when its shape is wrong or seq is not a
  // multiple of every segment length.
  absl::StatusOr<Tensor> Forward(const Tensor& src, bool is_causal);

  const TransformerLayerConfig& config() const { return config_; }

  void AppendParameters(const std::string& prefix,
                        std::vector<NamedParameter>* out) override;

 private:
  DilatedTransformerEncoderLayer(
      const TransformerLayerConfig& config,
      std::unique_ptr<MultiheadDilatedAttention> self_attn);

  TransformerLayerConfig config_;
  LayerNorm norm1_;
  std::unique_ptr<MultiheadDilatedAttention> self_attn_;
  FeedForwardBlock feed_forward_;
};

}  // namespace models
}  // namespace dilated

#endif  // MODELS_ENCODER_LAYER_H_
