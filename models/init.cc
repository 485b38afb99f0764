#include "models/init.h"

#include <cmath>

#include "factory/status_macros.h"

namespace dilated {
namespace models {

double Rng::Normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  // Two uniforms from the top 53 bits; u1 in (0, 1] keeps log() finite.
  constexpr double kTwoToMinus53 = 1.0 / 9007199254740992.0;
  const double u1 = 1.0 - static_cast<double>(engine_() >> 11) * kTwoToMinus53;
  const double u2 = static_cast<double>(engine_() >> 11) * kTwoToMinus53;
  const double radius = std::sqrt(-2.0 * std::log(u1));
  const double angle = 2.0 * M_PI * u2;
  spare_ = radius * std::sin(angle);
  has_spare_ = true;
  return radius * std::cos(angle);
}

void XavierNormalRows(double gain, int64_t row_begin, int64_t row_end,
                      Parameter* weight, Rng* rng) {
  DA_CHECK(weight->shape.size() == 2, "XavierNormalRows needs a 2-D weight");
  DA_CHECK(0 <= row_begin && row_begin < row_end && row_end <= weight->shape[0],
           "XavierNormalRows row range out of bounds");
  const int64_t fan_in = weight->shape[1];
  const int64_t fan_out = row_end - row_begin;
  const double std_dev =
      gain * std::sqrt(2.0 / static_cast<double>(fan_in + fan_out));
  float* data = weight->values.data();
  for (int64_t i = row_begin * fan_in; i < row_end * fan_in; ++i) {
    data[i] = static_cast<float>(std_dev * rng->Normal());
  }
}

void XavierNormal(double gain, Parameter* weight, Rng* rng) {
  XavierNormalRows(gain, 0, weight->shape[0], weight, rng);
}

double EncoderGammaInit(int64_t num_encoder_layers,
                        int64_t num_decoder_layers) {
  DA_CHECK(num_encoder_layers >= 1 && num_decoder_layers >= 1,
           "EncoderGammaInit needs at least one layer of each kind");
  return std::sqrt(std::log(3.0 * num_decoder_layers) *
                   std::log(2.0 * num_encoder_layers) / 3.0);
}

double DecoderGammaInit(int64_t num_decoder_layers) {
  DA_CHECK(num_decoder_layers >= 1, "DecoderGammaInit needs a decoder layer");
  return std::sqrt(std::log(3.0 * num_decoder_layers));
}

}  // namespace models
}  // namespace dilated
