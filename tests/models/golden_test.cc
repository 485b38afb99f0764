// The models against the golden files of tests/data/models/, written by
// tools/make_model_goldens.py from PyTorch modules with the reference's
// parameter names: each file's state dict is loaded with the loader users use
// (LoadSafetensorsStateDict) and the output is compared with the float64
// PyTorch output, once per registered attention core.

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "attention/registry.h"
#include "gtest/gtest.h"
#include "io/safetensors.h"
#include "models/long_net.h"
#include "models/registry.h"
#include "models/safetensors_io.h"
#include "tests/models/model_test_util.h"
#include "tests/testing/compare.h"

namespace dilated {
namespace models {
namespace {

using ::dilated::models::testing::ToDoubles;
using ::dilated::testing::AllClose;
using ::dilated::testing::Tolerance;

constexpr char kDir[] = "tests/data/models/";

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

// Every file of tests/data/models/ must appear here (checked below). The
// settings are those of tools/make_model_goldens.py: d_model 32, 4 heads,
// dim_feedforward 48.
std::vector<GoldenCase> Cases() {
  std::vector<GoldenCase> cases;
  cases.push_back({"multihead_fork", Kind::kMultihead, false});
  cases.push_back({"multihead_fork_cross_causal", Kind::kMultihead, true});
  GoldenCase plain{"multihead_fork_plain", Kind::kMultihead, true};
  plain.bias = false;
  plain.layer_norm = false;
  cases.push_back(plain);
  GoldenCase upstream{"multihead_upstream", Kind::kMultihead, true};
  upstream.variant = MultiheadVariant::kUpstream;
  cases.push_back(upstream);
  GoldenCase sums{"multihead_upstream_group_sums", Kind::kMultihead, false};
  sums.variant = MultiheadVariant::kUpstream;
  sums.normalize_group_sums = true;
  cases.push_back(sums);
  cases.push_back({"multihead_improved", Kind::kMultiheadImproved, true});
  cases.push_back(
      {"multihead_improved_cross", Kind::kMultiheadImproved, false});
  cases.push_back({"encoder_layer_relu_causal", Kind::kEncoder, true});
  GoldenCase gelu{"encoder_layer_gelu", Kind::kEncoder, false};
  gelu.activation = Activation::kGelu;
  cases.push_back(gelu);
  cases.push_back({"decoder_layer_causal", Kind::kDecoder, true});
  GoldenCase longnet{"longnet_causal", Kind::kLongNet, true};
  longnet.num_encoder_layers = 2;
  longnet.num_decoder_layers = 2;
  cases.push_back(longnet);
  GoldenCase small{"longnet_1x1_noncausal", Kind::kLongNet, false};
  small.num_encoder_layers = 1;
  small.num_decoder_layers = 1;
  small.segment_lengths = {8, 16};
  small.dilation_rates = {1, 2};
  cases.push_back(small);
  cases.push_back({"encoder_layer_bf16", Kind::kEncoder, true, kBFloat16});
  cases.push_back({"multihead_f16", Kind::kMultihead, true, kFloat16});
  return cases;
}

MultiheadConfig MultiheadFor(const GoldenCase& c, const std::string& core) {
  MultiheadConfig config;
  config.embed_dim = 32;
  config.num_heads = 4;
  config.segment_lengths = c.segment_lengths;
  config.dilation_rates = c.dilation_rates;
  config.bias = c.bias;
  config.layer_norm = c.layer_norm;
  config.variant = c.variant;
  config.normalize_group_sums = c.normalize_group_sums;
  config.attention_core = core;
  return config;
}

TransformerLayerConfig LayerFor(const GoldenCase& c, const std::string& core) {
  TransformerLayerConfig config;
  config.d_model = 32;
  config.nhead = 4;
  config.segment_lengths = c.segment_lengths;
  config.dilation_rates = c.dilation_rates;
  config.dim_feedforward = 48;
  config.activation = c.activation;
  config.attention_core = core;
  return config;
}

LongNetConfig LongNetFor(const GoldenCase& c, const std::string& core) {
  LongNetConfig config;
  config.d_model = 32;
  config.nhead = 4;
  config.num_encoder_layers = c.num_encoder_layers;
  config.num_decoder_layers = c.num_decoder_layers;
  config.dim_feedforward = 48;
  config.segment_lengths = c.segment_lengths;
  config.dilation_rates = c.dilation_rates;
  config.attention_core = core;
  return config;
}

// Builds the case's module, loads its weights from `path` and runs it.
absl::StatusOr<Tensor> RunCase(const GoldenCase& c, const std::string& core,
                               const std::string& path, const Tensor& x,
                               const Tensor* memory) {
  LoadOptions options;
  options.ignored_prefixes = {"input."};
  switch (c.kind) {
    case Kind::kMultihead:
    case Kind::kMultiheadImproved: {
      DA_ASSIGN_OR_RETURN(std::unique_ptr<MultiheadAttention> module,
                          CreateMultiheadAttention(c.kind == Kind::kMultihead
                                                       ? "multihead_standard"
                                                       : "multihead_improved",
                                                   MultiheadFor(c, core)));
      DA_RETURN_IF_ERROR(LoadSafetensorsStateDict(path, module.get(), options));
      if (memory == nullptr) return module->Forward(x, c.is_causal);
      return module->Forward(x, *memory, *memory, c.is_causal);
    }
    case Kind::kEncoder: {
      DA_ASSIGN_OR_RETURN(auto layer, DilatedTransformerEncoderLayer::Create(
                                          LayerFor(c, core)));
      DA_RETURN_IF_ERROR(LoadSafetensorsStateDict(path, layer.get(), options));
      return layer->Forward(x, c.is_causal);
    }
    case Kind::kDecoder: {
      DA_ASSIGN_OR_RETURN(auto layer, DilatedTransformerDecoderLayer::Create(
                                          LayerFor(c, core)));
      DA_RETURN_IF_ERROR(LoadSafetensorsStateDict(path, layer.get(), options));
      return layer->Forward(x, *memory, c.is_causal, c.is_causal);
    }
    case Kind::kLongNet: {
      DA_ASSIGN_OR_RETURN(auto model, LongNet::Create(LongNetFor(c, core)));
      DA_RETURN_IF_ERROR(LoadSafetensorsStateDict(path, model.get(), options));
      return model->Forward(x, c.is_causal);
    }
  }
  return absl::InternalError("unknown kind");
}

struct Param {
  GoldenCase golden;
  std::string core;
};

void PrintTo(const Param& p, std::ostream* os) {
  *os << p.golden.name << " with the '" << p.core << "' core";
}

class GoldenTest : public ::testing::TestWithParam<Param> {};

TEST_P(GoldenTest, MatchesPyTorch) {
  const GoldenCase& c = GetParam().golden;
  const std::string path = std::string(kDir) + c.name + ".safetensors";
  absl::StatusOr<io::SafetensorsFile> inputs = io::ReadSafetensors(path);
  ASSERT_TRUE(inputs.ok()) << inputs.status();
  absl::StatusOr<Tensor> x = ReadTensor(*inputs, "input.x");
  ASSERT_TRUE(x.ok()) << x.status();
  absl::StatusOr<Tensor> memory = ReadTensor(*inputs, "input.memory");
  const bool has_memory = memory.ok();
  absl::StatusOr<Tensor> y =
      RunCase(c, GetParam().core, path, *x, has_memory ? &*memory : nullptr);
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_EQ(y->dtype(), x->dtype());

  absl::StatusOr<io::SafetensorsFile> expected =
      io::ReadSafetensors(std::string(kDir) + c.name + ".expected.safetensors");
  ASSERT_TRUE(expected.ok()) << expected.status();
  absl::StatusOr<const io::SafetensorsTensor*> want = expected->Find("y");
  ASSERT_TRUE(want.ok()) << want.status();
  EXPECT_EQ((*want)->shape, y->shape());
  EXPECT_TRUE(AllClose(ToDoubles(*y), (*want)->ToDoubles(), c.tolerance));
}

std::vector<Param> AllParams() {
  std::vector<Param> params;
  for (const std::string& core : RegisteredAttentionNames()) {
    for (const GoldenCase& c : Cases()) params.push_back({c, core});
  }
  return params;
}

INSTANTIATE_TEST_SUITE_P(Files, GoldenTest, ::testing::ValuesIn(AllParams()),
                         [](const ::testing::TestParamInfo<Param>& info) {
                           return info.param.golden.name + "_" +
                                  info.param.core;
                         });

TEST(GoldenFilesTest, EveryFileHasACase) {
  std::vector<std::string> names;
  for (const GoldenCase& c : Cases()) names.push_back(c.name);
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(kDir)) {
    const std::string filename = entry.path().filename().string();
    absl::string_view file = filename;
    if (!absl::ConsumeSuffix(&file, ".expected.safetensors")) continue;
    ++files;
    EXPECT_NE(std::find(names.begin(), names.end(), std::string(file)),
              names.end())
        << file << " has no entry in Cases()";
  }
  EXPECT_EQ(files, static_cast<int>(names.size()));
}

// A state dict saved by the writer loads back into an equal module.
TEST(SafetensorsStateDictTest, SaveThenLoadRoundTrips) {
  const std::string path =
      std::string(std::getenv("TEST_TMPDIR")) + "/longnet.safetensors";
  LongNetConfig config = LongNetFor(Cases()[10], "");
  config.seed = 3;
  auto saved = LongNet::Create(config);
  config.seed = 4;
  auto loaded = LongNet::Create(config);
  ASSERT_TRUE(saved.ok() && loaded.ok());
  ASSERT_TRUE(SaveSafetensorsStateDict(path, saved->get()).ok());
  ASSERT_TRUE(LoadSafetensorsStateDict(path, loaded->get()).ok());
  const ParameterMap a = ExportStateDict(saved->get());
  const ParameterMap b = ExportStateDict(loaded->get());
  for (const auto& [name, tensor] : a.tensors()) {
    EXPECT_EQ(tensor.values, b.Find(name)->values) << name;
  }
}

TEST(SafetensorsStateDictTest, ErrorsNameTheFileAndTheTensor) {
  auto layer = DilatedTransformerEncoderLayer::Create(LayerFor(Cases()[7], ""));
  ASSERT_TRUE(layer.ok());
  // A multihead checkpoint is not an encoder layer's.
  const std::string path = std::string(kDir) + "multihead_fork.safetensors";
  const absl::Status status = LoadSafetensorsStateDict(path, layer->get());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(status.message(), path)) << status;
  EXPECT_TRUE(
      absl::StrContains(status.message(), "missing tensor 'norm1.weight'"))
      << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "; and 27 more")) << status;
  EXPECT_EQ(
      LoadSafetensorsStateDict("no/such/file.safetensors", layer->get()).code(),
      absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace models
}  // namespace dilated
