// File: golden_cases.h
//
// The cases of tests/data/models/ (written by tools/make_model_goldens.py):
// each file's module kind and settings, its tolerance against the float64
// PyTorch output, and the host module built from it with its state dict
// loaded, for the CPU and CUDA golden tests.

#ifndef TESTS_MODELS_GOLDEN_CASES_H_
#define TESTS_MODELS_GOLDEN_CASES_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/long_net.h"
#include "models/multihead_attention.h"
#include "tests/testing/compare.h"

namespace dilated {
namespace models {
namespace testing {

using ::dilated::testing::Tolerance;

// The golden files' directory: $MODEL_GOLDEN_DIR when set (with a trailing
// slash), else tests/data/models/ (the test's runfiles).
std::string GoldenDir();

// float32 activations against a float64 reference through up to four layers
// of width <= 48: measured worst error 2e-6 on outputs of size ~4.
constexpr Tolerance kFloat32{2e-5, 2e-5};
// 16-bit storage rounds every op's output: outputs of size ~4 carry a few
// bfloat16 ulps (2^-6 there; measured worst 0.03) or float16 ulps (2^-9;
// measured worst 1.7e-3).
constexpr Tolerance kBFloat16{3e-2, 1.6e-2};
constexpr Tolerance kFloat16{4e-3, 2e-3};

enum class Kind {
  kMultihead,
  kMultiheadImproved,
  kEncoder,
  kDecoder,
  kLongNet
};

struct GoldenCase {
  std::string name;
  Kind kind;
  bool is_causal;
  Tolerance tolerance = kFloat32;
  std::vector<int64_t> segment_lengths = {4, 8, 16};
  std::vector<int64_t> dilation_rates = {1, 2, 4};
  MultiheadVariant variant = MultiheadVariant::kFork;
  bool bias = true;
  bool layer_norm = true;
  bool normalize_group_sums = false;
  Activation activation = Activation::kRelu;
  int64_t num_encoder_layers = 0;
  int64_t num_decoder_layers = 0;
};

// Every file of tests/data/models/ (d_model 32, 4 heads, dim_feedforward 48).
std::vector<GoldenCase> Cases();

MultiheadConfig MultiheadFor(const GoldenCase& c, const std::string& core);
TransformerLayerConfig LayerFor(const GoldenCase& c, const std::string& core);
LongNetConfig LongNetFor(const GoldenCase& c, const std::string& core);

// The host module of a case: exactly one member is set.
struct CaseModule {
  std::unique_ptr<MultiheadAttention> multihead;
  std::unique_ptr<DilatedTransformerEncoderLayer> encoder;
  std::unique_ptr<DilatedTransformerDecoderLayer> decoder;
  std::unique_ptr<LongNet> longnet;
};

// Returns the case's module with `core`, its weights loaded from `path` with
// LoadSafetensorsStateDict (input.* ignored).
absl::StatusOr<CaseModule> LoadCaseModule(const GoldenCase& c,
                                          const std::string& core,
                                          const std::string& path);

}  // namespace testing
}  // namespace models
}  // namespace dilated

#endif  // TESTS_MODELS_GOLDEN_CASES_H_
