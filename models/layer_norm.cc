#include "models/layer_norm.h"

#include <algorithm>
#include <cmath>

#include "factory/status_macros.h"

namespace dilated {
namespace models {
namespace {

void NormalizeRows(const float* x, int64_t rows, int64_t features,
                   const float* weight, const float* bias, double eps,
                   float* y) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* in = x + r * features;
    float* out = y + r * features;
    double sum = 0.0;
    for (int64_t c = 0; c < features; ++c) sum += in[c];
    const double mean = sum / features;
    double squares = 0.0;
    for (int64_t c = 0; c < features; ++c) {
      const double centred = in[c] - mean;
      squares += centred * centred;
    }
    const float inverse_std =
        static_cast<float>(1.0 / std::sqrt(squares / features + eps));
    const float mean_f = static_cast<float>(mean);
    for (int64_t c = 0; c < features; ++c) {
      out[c] = (in[c] - mean_f) * inverse_std * weight[c] + bias[c];
    }
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
  Tensor y = Tensor::Zeros(x.dtype(), x.shape());
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
