// File: linear.h
//
// Linear: y = x W^T + b over the last axis, PyTorch's nn.Linear (weight
// [out_features, in_features], optional bias [out_features]). The product is
// computed in float32 (kernels/cpu/linear_gemm.h on AVX-512, Eigen
// otherwise); the output has the input's dtype.

#ifndef MODELS_LINEAR_H_
#define MODELS_LINEAR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "models/init.h"
#include "models/module.h"
#include "models/tensor.h"

namespace dilated {
namespace models {

class Linear : public Module {
 public:
  // Weight and bias start at zero.
  Linear(int64_t in_features, int64_t out_features, bool bias);

  // Returns x W^T + b, shape [..., out_features], in x's dtype.
  // REQUIRES: x.rank() >= 1 and x.dim(-1) == in_features().
  Tensor Forward(const Tensor& x) const;

  // Returns outputs [begin, end) of Forward(x) (rows [begin, end) of the
  // weight), shape [..., end - begin], without computing the others.
  // REQUIRES: as Forward, and 0 <= begin < end <= out_features().
  Tensor ForwardSlice(const Tensor& x, int64_t begin, int64_t end) const;

  // Returns max(Forward(x), 0), the ReLU applied as the product is stored.
  Tensor ForwardRelu(const Tensor& x) const;

  // Sets the weight to Xavier-normal with `gain` and the bias to zero.
  void Reset(double gain, Rng* rng);

  int64_t in_features() const { return weight_.shape[1]; }
  int64_t out_features() const { return weight_.shape[0]; }
  bool has_bias() const { return has_bias_; }
  Parameter& weight() { return weight_; }
  Parameter& bias() { return bias_; }

  void AppendParameters(const std::string& prefix,
                        std::vector<NamedParameter>* out) override;

 private:
  // Outputs [begin, end) of Forward(x), then max(y, 0) when `relu`.
  Tensor Compute(const Tensor& x, int64_t begin, int64_t end, bool relu) const;

  Parameter weight_;
  Parameter bias_;
  bool has_bias_;
};

}  // namespace models
}  // namespace dilated

#endif  // MODELS_LINEAR_H_
