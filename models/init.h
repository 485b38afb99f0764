// File: init.h
//
// Seeded initialisation of fresh models: a normal generator whose sequence is
// fixed by the seed on every platform (Box-Muller over std::mt19937_64, whose
// output the C++ standard defines), Xavier-normal weights, and the MAGNETO
// gains of LongNet (arXiv 2210.06423, Fig. 2).
//
//   dilated::models::Rng rng(/*seed=*/42);
//   dilated::models::XavierNormal(/*gain=*/1.0, &weight, &rng);

#ifndef MODELS_INIT_H_
#define MODELS_INIT_H_

#include <cstdint>
#include <random>

#include "models/module.h"

namespace dilated {
namespace models {

class Rng {
 public:
  explicit Rng(uint64_t seed) : engine_(seed) {}

  // Returns the next standard normal sample.
  double Normal();

 private:
  std::mt19937_64 engine_;
  bool has_spare_ = false;
  double spare_ = 0.0;
};

// Fills the 2-D weight `[fan_out, fan_in]` rows [row_begin, row_end) with
// N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out)) where fan_out is the
// number of rows filled (torch.nn.init.xavier_normal_ on that slice).
// REQUIRES: weight->shape.size() == 2, 0 <= row_begin < row_end <= rows.
void XavierNormalRows(double gain, int64_t row_begin, int64_t row_end,
                      Parameter* weight, Rng* rng);

// XavierNormalRows over every row.
void XavierNormal(double gain, Parameter* weight, Rng* rng);

// Returns LongNet's encoder gain sqrt(ln(3 N_dec) ln(2 N_enc) / 3).
// REQUIRES: both counts >= 1.
double EncoderGammaInit(int64_t num_encoder_layers, int64_t num_decoder_layers);

// Returns LongNet's decoder gain sqrt(ln(3 N_dec)).
// REQUIRES: num_decoder_layers >= 1.
double DecoderGammaInit(int64_t num_decoder_layers);

}  // namespace models
}  // namespace dilated

#endif  // MODELS_INIT_H_
