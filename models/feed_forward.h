// File: feed_forward.h
//
// The feed-forward block of the dilated transformer layers (MAGNETO,
// docs/REFERENCE.md §8): pre_norm -> linear1 -> activation -> sub_norm ->
// linear2, returning the residual branch. Its parameters are direct children of
// the layer, so the two LayerNorms carry the layer's names for them (encoder:
// norm2 and norm3; decoder: norm3 and norm4).

#ifndef MODELS_FEED_FORWARD_H_
#define MODELS_FEED_FORWARD_H_

#include <cstdint>
#include <string>
#include <vector>

#include "models/init.h"
#include "models/layer_norm.h"
#include "models/linear.h"
#include "models/module.h"
#include "models/ops.h"
#include "models/tensor.h"

namespace dilated {
namespace models {

class FeedForwardBlock : public Module {
 public:
  FeedForwardBlock(int64_t d_model, int64_t dim_feedforward,
                   Activation activation, double layer_norm_eps,
                   std::string pre_norm_name, std::string sub_norm_name);

  // Returns linear2(sub_norm(act(linear1(pre_norm(x))))).
  // REQUIRES: x is [..., d_model].
  Tensor Forward(const Tensor& x) const;

  // Xavier-normal linear1 and linear2 with `gain`, zero biases, LayerNorms at
  // one and zero.
  void Reset(double gain, Rng* rng);

  // Appends pre_norm, linear1, sub_norm, linear2 (the layers' order).
  void AppendParameters(const std::string& prefix,
                        std::vector<NamedParameter>* out) override;

 private:
  LayerNorm pre_norm_;
  Linear linear1_;
  LayerNorm sub_norm_;
  Linear linear2_;
  Activation activation_;
  std::string pre_norm_name_;
  std::string sub_norm_name_;
};

}  // namespace models
}  // namespace dilated

#endif  // MODELS_FEED_FORWARD_H_
