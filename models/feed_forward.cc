#include "models/feed_forward.h"

#include <utility>

namespace dilated {
namespace models {

FeedForwardBlock::FeedForwardBlock(int64_t d_model, int64_t dim_feedforward,
                                   Activation activation, double layer_norm_eps,
                                   std::string pre_norm_name,
                                   std::string sub_norm_name)
    : pre_norm_(d_model, layer_norm_eps),
      linear1_(d_model, dim_feedforward, /*bias=*/true),
      sub_norm_(dim_feedforward, layer_norm_eps),
      linear2_(dim_feedforward, d_model, /*bias=*/true),
      activation_(activation),
      pre_norm_name_(std::move(pre_norm_name)),
      sub_norm_name_(std::move(sub_norm_name)) {}

Tensor FeedForwardBlock::Forward(const Tensor& x) const {
  const Tensor normed = pre_norm_.Forward(x);
  Tensor hidden;
  if (activation_ == Activation::kRelu) {
    hidden = linear1_.ForwardRelu(normed);
  } else {
    hidden = linear1_.Forward(normed);
    ApplyActivation(activation_, &hidden);
  }
  return linear2_.Forward(sub_norm_.Forward(hidden));
}

void FeedForwardBlock::Reset(double gain, Rng* rng) {
  pre_norm_.Reset();
  linear1_.Reset(gain, rng);
  sub_norm_.Reset();
  linear2_.Reset(gain, rng);
}

void FeedForwardBlock::AppendParameters(const std::string& prefix,
                                        std::vector<NamedParameter>* out) {
  pre_norm_.AppendParameters(prefix + pre_norm_name_ + ".", out);
  linear1_.AppendParameters(prefix + "linear1.", out);
  sub_norm_.AppendParameters(prefix + sub_norm_name_ + ".", out);
  linear2_.AppendParameters(prefix + "linear2.", out);
}

}  // namespace models
}  // namespace dilated
