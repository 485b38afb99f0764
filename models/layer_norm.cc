#include "models/layer_norm.h"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>

#include "factory/status_macros.h"

namespace dilated {
namespace models {
namespace {

void NormalizeRows(const float* x, int64_t rows, int64_t features,
                   const float* weight, const float* bias, double eps,
                   float* y) {
  using Row = Eigen::Array<float, 1, Eigen::Dynamic>;
  const Eigen::Map<const Row> w(weight, features);
  const Eigen::Map<const Row> b(bias, features);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const Eigen::Map<const Row> in(x + r * features, features);
    Eigen::Map<Row> out(y + r * features, features);
    // Two passes in float32 (as PyTorch's CPU kernel accumulates): the mean,
    // then the mean square of the centred row.
    const float mean = in.mean();
    out = in - mean;
    const float variance = out.square().mean();
    const float inverse_std =
        1.0f / std::sqrt(variance + static_cast<float>(eps));
    out = out * inverse_std * w + b;
  }
}

}  // namespace

LayerNorm::LayerNorm(int64_t features, double eps)
    : weight_(Parameter::Filled({features}, 1.0f)),
      bias_(Parameter::Filled({features}, 0.0f)),
      eps_(eps) {}

Tensor LayerNorm::Forward(const Tensor& x) const {
  DA_CHECK(x.rank() >= 1 && x.dim(-1) == features(),
           "LayerNorm input's last axis must be features");
  Tensor y = Tensor::Uninitialized(x.dtype(), x.shape());
  const int64_t rows = x.NumElements() / features();
  if (x.dtype() == DType::kFloat32) {
    NormalizeRows(x.Float32(), rows, features(), weight_.values.data(),
                  bias_.values.data(), eps_, y.MutableFloat32());
    return y;
  }
  const std::vector<float> x32 = x.ToFloat32();
  std::vector<float> y32(x32.size());
  NormalizeRows(x32.data(), rows, features(), weight_.values.data(),
                bias_.values.data(), eps_, y32.data());
  y.AssignFromFloat32(y32);
  return y;
}

void LayerNorm::Reset() {
  std::fill(weight_.values.begin(), weight_.values.end(), 1.0f);
  std::fill(bias_.values.begin(), bias_.values.end(), 0.0f);
}

void LayerNorm::AppendParameters(const std::string& prefix,
                                 std::vector<NamedParameter>* out) {
  out->push_back({prefix + "weight", &weight_});
  out->push_back({prefix + "bias", &bias_});
}

}  // namespace models
}  // namespace dilated
