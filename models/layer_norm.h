// File: layer_norm.h
//
// LayerNorm over the last axis, PyTorch's nn.LayerNorm with an affine weight
// and bias: y = (x - mean) / sqrt(var + eps) * weight + bias, var biased.
// Statistics are computed in float32; the output has the input's dtype.

#ifndef MODELS_LAYER_NORM_H_
#define MODELS_LAYER_NORM_H_

#include <cstdint>
#include <string>
#include <vector>

#include "models/module.h"
#include "models/tensor.h"

namespace dilated {
namespace models {

class LayerNorm : public Module {
 public:
  // Weight starts at one, bias at zero (PyTorch's defaults).
  LayerNorm(int64_t features, double eps);

  // Returns the normalised x, same shape and dtype.
  // REQUIRES: x.rank() >= 1 and x.dim(-1) == features().
  Tensor Forward(const Tensor& x) const;

  // Sets the weight to one and the bias to zero.
  void Reset();

  int64_t features() const { return weight_.shape[0]; }
  double eps() const { return eps_; }

  void AppendParameters(const std::string& prefix,
                        std::vector<NamedParameter>* out) override;

 private:
  Parameter weight_;
  Parameter bias_;
  double eps_;
};

}  // namespace models
}  // namespace dilated

#endif  // MODELS_LAYER_NORM_H_
