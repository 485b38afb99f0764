// Runs the run_model binary as a user would: on the model golden files (its
// output must match PyTorch's) and on bad command lines, weights and inputs
// (it must exit non-zero with one clear line on stderr).

#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "io/safetensors.h"
#include "tests/tools/tool_runner.h"

namespace dilated {
namespace {

using ::testing::HasSubstr;

constexpr char kBinary[] = "tools/run_model";
constexpr char kDir[] = "tests/data/models/";

using tools_testing::ReadAll;
using tools_testing::TempPath;
using tools_testing::ToolResult;

ToolResult RunTool(const std::vector<std::string>& args) {
  return tools_testing::RunTool(kBinary, args);
}

void ExpectOneLineError(const ToolResult& result,
                        const std::vector<std::string>& parts) {
  tools_testing::ExpectOneLineError(result, "run_model", parts);
}

// The flags of a golden case, weights and inputs from its own file.
std::vector<std::string> Flags(const std::string& model,
                               const std::string& golden,
                               const std::string& output) {
  const std::string file = std::string(kDir) + golden + ".safetensors";
  return {
      "--model=" + model,      "--weights=" + file, "--input=" + file,
      "--output=" + output,    "--nhead=4",         "--segment_lengths=4,8,16",
      "--dilation_rates=1,2,4"};
}

// Expects `output` to hold y equal to the golden's expected y.
void ExpectMatchesGolden(const std::string& output, const std::string& golden,
                         double tolerance) {
  absl::StatusOr<io::SafetensorsFile> actual = io::ReadSafetensors(output);
  ASSERT_TRUE(actual.ok()) << actual.status();
  absl::StatusOr<io::SafetensorsFile> expected =
      io::ReadSafetensors(std::string(kDir) + golden + ".expected.safetensors");
  ASSERT_TRUE(expected.ok()) << expected.status();
  const std::vector<double> a = (*actual->Find("y"))->ToDoubles();
  const std::vector<double> b = (*expected->Find("y"))->ToDoubles();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_NEAR(a[i], b[i], tolerance) << golden << " element " << i;
  }
}

// float32 outputs of size ~4 against float64: see tests/models/golden_test.cc.
constexpr double kFloat32 = 1e-4;

struct GoldenRun {
  std::string model;
  std::string golden;
  std::vector<std::string> extra_flags;
};

class RunModelGoldenTest : public ::testing::TestWithParam<GoldenRun> {};

TEST_P(RunModelGoldenTest, OutputMatchesPyTorch) {
  const std::string output = TempPath(GetParam().golden + ".out.safetensors");
  std::vector<std::string> flags =
      Flags(GetParam().model, GetParam().golden, output);
  flags.insert(flags.end(), GetParam().extra_flags.begin(),
               GetParam().extra_flags.end());
  const ToolResult result = RunTool(flags);
  ASSERT_EQ(result.exit_code, 0) << result.error;
  ExpectMatchesGolden(output, GetParam().golden, kFloat32);
}

INSTANTIATE_TEST_SUITE_P(
    Models, RunModelGoldenTest,
    ::testing::Values(
        GoldenRun{"multihead", "multihead_fork", {}},
        GoldenRun{"multihead", "multihead_fork_cross_causal", {"--is_causal"}},
        GoldenRun{"multihead", "multihead_fork_plain", {"--is_causal"}},
        GoldenRun{"multihead", "multihead_upstream", {"--is_causal"}},
        GoldenRun{"multihead",
                  "multihead_upstream_group_sums",
                  {"--normalize_group_sums"}},
        GoldenRun{"multihead_improved", "multihead_improved", {"--is_causal"}},
        GoldenRun{"encoder_layer", "encoder_layer_gelu", {"--activation=gelu"}},
        GoldenRun{"decoder_layer", "decoder_layer_causal", {"--is_causal"}},
        GoldenRun{"longnet", "longnet_causal", {"--is_causal"}},
        GoldenRun{"longnet",
                  "longnet_causal",
                  {"--is_causal", "--d_model=32", "--num_encoder_layers=2",
                   "--num_decoder_layers=2", "--dim_feedforward=48",
                   "--core=standard"}}),
    [](const ::testing::TestParamInfo<GoldenRun>& info) {
      return absl::StrCat(info.param.golden, "_", info.index);
    });

TEST(RunModelTest, WeightsAndInputMayBeSeparateFiles) {
  const std::string output = TempPath("separate.safetensors");
  std::vector<std::string> flags = Flags("multihead", "multihead_fork", output);
  // Weights from the file, the input from a copy holding input.x only.
  absl::StatusOr<io::SafetensorsFile> golden =
      io::ReadSafetensors(std::string(kDir) + "multihead_fork.safetensors");
  ASSERT_TRUE(golden.ok());
  const io::SafetensorsTensor* x = *golden->Find("input.x");
  const std::string input = TempPath("x_only.safetensors");
  ASSERT_TRUE(
      io::WriteSafetensors(input, {{"input.x", x->dtype, x->shape, x->data}})
          .ok());
  flags[2] = "--input=" + input;
  const ToolResult result = RunTool(flags);
  ASSERT_EQ(result.exit_code, 0) << result.error;
  ExpectMatchesGolden(output, "multihead_fork", kFloat32);
}

// The reduced float32 matmul precisions on the CPU (AMX where present, else
// float32): LongNet 2+2 against PyTorch's float32 output (values of size ~4).
TEST(RunModelTest, ReducedMatmulPrecisionsStayCloseToFloat32) {
  // high: operands to about 16 bits (2^-16 relative per product), through
  // four layers; medium: bfloat16 operands (2^-8 relative per product).
  const std::pair<std::string, double> cases[] = {{"high", 2e-3},
                                                  {"medium", 1e-1}};
  for (const auto& [precision, tolerance] : cases) {
    SCOPED_TRACE(precision);
    const std::string output = TempPath("longnet_" + precision);
    std::vector<std::string> flags = Flags("longnet", "longnet_causal", output);
    flags.insert(flags.end(),
                 {"--is_causal", "--float32_matmul_precision=" + precision});
    const ToolResult result = RunTool(flags);
    ASSERT_EQ(result.exit_code, 0) << result.error;
    ExpectMatchesGolden(output, "longnet_causal", tolerance);
  }
}

TEST(RunModelErrorTest, UnknownMatmulPrecision) {
  std::vector<std::string> flags =
      Flags("longnet", "longnet_causal", TempPath("unused"));
  flags.push_back("--float32_matmul_precision=tf32");
  ExpectOneLineError(RunTool(flags),
                     {"--float32_matmul_precision must be highest, high or "
                      "medium, got \"tf32\""});
}

TEST(RunModelErrorTest, UnknownModel) {
  std::vector<std::string> flags =
      Flags("transformer", "multihead_fork", TempPath("o.safetensors"));
  ExpectOneLineError(RunTool(flags),
                     {"--model=transformer: expected one of multihead, "
                      "multihead_improved, encoder_layer, decoder_layer, "
                      "longnet"});
}

TEST(RunModelErrorTest, MissingFlags) {
  std::vector<std::string> flags =
      Flags("multihead", "multihead_fork", TempPath("o.safetensors"));
  flags[4] = "--nhead=0";
  ExpectOneLineError(RunTool(flags), {"--nhead must be positive, got 0"});
  flags = Flags("multihead", "multihead_fork", TempPath("o.safetensors"));
  flags[5] = "--segment_lengths=4,x";
  ExpectOneLineError(RunTool(flags),
                     {"--segment_lengths=4,x: 'x' is not an integer"});
  flags = Flags("multihead", "multihead_fork", TempPath("o.safetensors"));
  flags.erase(flags.begin() + 6);
  ExpectOneLineError(RunTool(flags), {"--dilation_rates is required"});
  flags = Flags("multihead", "multihead_fork", TempPath("o.safetensors"));
  flags[3] = "--output=";
  ExpectOneLineError(RunTool(flags), {"--output is required"});
  flags = Flags("longnet", "longnet_causal", TempPath("o.safetensors"));
  flags.push_back("--activation=tanh");
  ExpectOneLineError(RunTool(flags), {"activation must be \"relu\" or "
                                      "\"gelu\", got \"tanh\""});
}

TEST(RunModelErrorTest, BadConfiguration) {
  std::vector<std::string> flags =
      Flags("multihead", "multihead_fork", TempPath("o.safetensors"));
  flags[6] = "--dilation_rates=1,2";
  ExpectOneLineError(RunTool(flags),
                     {"segment_lengths and dilation_rates must have the same "
                      "length: 3 != 2"});
  flags = Flags("multihead", "multihead_fork", TempPath("o.safetensors"));
  flags[4] = "--nhead=5";
  ExpectOneLineError(RunTool(flags),
                     {"embed_dim (32) must be divisible by num_heads (5)"});
}

TEST(RunModelErrorTest, SequenceNotDivisible) {
  std::vector<std::string> flags =
      Flags("longnet", "longnet_causal", TempPath("o.safetensors"));
  flags[5] = "--segment_lengths=4,8,32";
  ExpectOneLineError(RunTool(flags), {"sequence length 16 of x is not "
                                      "divisible by segment_lengths[2] = 32"});
}

TEST(RunModelErrorTest, WeightsOfAnotherModel) {
  std::vector<std::string> flags =
      Flags("encoder_layer", "multihead_fork", TempPath("o.safetensors"));
  ExpectOneLineError(RunTool(flags),
                     {"cannot infer d_model: the weights have no tensor "
                      "'norm1.weight'"});
  flags = Flags("encoder_layer", "multihead_fork", TempPath("o.safetensors"));
  flags.push_back("--d_model=32");
  flags.push_back("--dim_feedforward=48");
  ExpectOneLineError(RunTool(flags),
                     {"multihead_fork.safetensors': the state dict does not "
                      "match the module: missing tensor 'norm1.weight'",
                      "; and 26 more"});
}

TEST(RunModelErrorTest, FlagsThatContradictTheWeights) {
  std::vector<std::string> flags =
      Flags("longnet", "longnet_causal", TempPath("o.safetensors"));
  flags.push_back("--dim_feedforward=64");
  ExpectOneLineError(RunTool(flags),
                     {"--dim_feedforward=64 does not match the weights: "
                      "tensor 'encoder.layers.0.linear1.weight' has shape "
                      "[48, 32]"});
  flags = Flags("longnet", "longnet_causal", TempPath("o.safetensors"));
  flags.push_back("--num_decoder_layers=3");
  ExpectOneLineError(RunTool(flags),
                     {"--num_decoder_layers=3 does not match the weights, "
                      "which hold 2 decoder layers (decoder.layers.0 to 1)"});
  flags = Flags("multihead_improved", "multihead_improved",
                TempPath("o.safetensors"));
  flags.push_back("--d_model=64");
  ExpectOneLineError(RunTool(flags),
                     {"--d_model=64 does not match the weights: tensor "
                      "'qkv_proj.weight' has shape [96, 32]"});
}

TEST(RunModelErrorTest, SettingsTooLargeForTheWeightsAreRefused) {
  // The weights do not tell d_model (no norm1.weight), so the flag is taken:
  // a model this large cannot be in the file, and is not allocated.
  std::vector<std::string> flags =
      Flags("encoder_layer", "multihead_fork", TempPath("o.safetensors"));
  flags.push_back("--d_model=4000000");
  flags.push_back("--dim_feedforward=4000000");
  flags[4] = "--nhead=4";
  ExpectOneLineError(RunTool(flags),
                     {"describe a --model=encoder_layer of ",
                      "multihead_fork.safetensors' holds 4352 elements"});
}

// Writes a copy of golden `name` in which tensor `target` keeps only its
// first `keep` elements (as a 1-D tensor), and returns its path.
std::string WithShortenedTensor(const std::string& name,
                                const std::string& target, int64_t keep) {
  absl::StatusOr<io::SafetensorsFile> golden =
      io::ReadSafetensors(std::string(kDir) + name + ".safetensors");
  EXPECT_TRUE(golden.ok());
  std::vector<io::NamedTensor> tensors;
  for (const io::SafetensorsTensor& t : golden->tensors()) {
    if (t.name == target) {
      tensors.push_back({t.name, t.dtype, {keep}, t.data});
    } else {
      tensors.push_back({t.name, t.dtype, t.shape, t.data});
    }
  }
  const std::string path = TempPath("shortened.safetensors");
  EXPECT_TRUE(io::WriteSafetensors(path, tensors).ok());
  return path;
}

TEST(RunModelErrorTest, MisShapedTensorInTheCheckpoint) {
  const std::string weights = WithShortenedTensor(
      "longnet_causal", "decoder.layers.1.norm4.weight", 47);
  std::vector<std::string> flags =
      Flags("longnet", "longnet_causal", TempPath("o.safetensors"));
  flags[1] = "--weights=" + weights;
  ExpectOneLineError(RunTool(flags),
                     {"shortened.safetensors': the state dict does not match "
                      "the module: tensor 'decoder.layers.1.norm4.weight' has "
                      "shape [47] but the module expects [48]"});
}

TEST(RunModelErrorTest, MissingTensorInTheCheckpoint) {
  absl::StatusOr<io::SafetensorsFile> golden = io::ReadSafetensors(
      std::string(kDir) + "decoder_layer_causal.safetensors");
  ASSERT_TRUE(golden.ok());
  std::vector<io::NamedTensor> tensors;
  for (const io::SafetensorsTensor& t : golden->tensors()) {
    if (t.name == "multihead_attn.k_ln.bias") continue;
    tensors.push_back({t.name, t.dtype, t.shape, t.data});
  }
  const std::string weights = TempPath("incomplete.safetensors");
  ASSERT_TRUE(io::WriteSafetensors(weights, tensors).ok());
  std::vector<std::string> flags =
      Flags("decoder_layer", "decoder_layer_causal", TempPath("o.safetensors"));
  flags[1] = "--weights=" + weights;
  ExpectOneLineError(RunTool(flags),
                     {"missing tensor 'multihead_attn.k_ln.bias' (the module "
                      "expects shape [32])"});
}

TEST(RunModelErrorTest, LayerIndicesMustBeContiguous) {
  absl::StatusOr<io::SafetensorsFile> golden = io::ReadSafetensors(
      std::string(kDir) + "longnet_1x1_noncausal.safetensors");
  ASSERT_TRUE(golden.ok());
  // The decoder layer renamed to index 7: seven layers would be missing.
  std::vector<io::NamedTensor> tensors;
  for (const io::SafetensorsTensor& t : golden->tensors()) {
    std::string name = t.name;
    if (absl::StartsWith(name, "decoder.layers.0.")) {
      name = "decoder.layers.7." + name.substr(17);
    }
    tensors.push_back({name, t.dtype, t.shape, t.data});
  }
  const std::string weights = TempPath("gap.safetensors");
  ASSERT_TRUE(io::WriteSafetensors(weights, tensors).ok());
  std::vector<std::string> flags =
      Flags("longnet", "longnet_1x1_noncausal", TempPath("o.safetensors"));
  flags[1] = "--weights=" + weights;
  flags[2] = "--input=" + weights;
  flags[5] = "--segment_lengths=8,16";
  flags[6] = "--dilation_rates=1,2";
  ExpectOneLineError(RunTool(flags),
                     {"the weights' decoder.layers.<i> layers are not "
                      "numbered 0 to 0: the largest index is 7"});
}

TEST(RunModelErrorTest, MissingFilesAndTensors) {
  std::vector<std::string> flags =
      Flags("multihead", "multihead_fork", TempPath("o.safetensors"));
  flags[1] = "--weights=" + TempPath("nope.safetensors");
  ExpectOneLineError(RunTool(flags), {"NOT_FOUND", "nope.safetensors"});
  flags =
      Flags("decoder_layer", "decoder_layer_causal", TempPath("o.safetensors"));
  flags[2] = "--input=" + std::string(kDir) + "multihead_fork.safetensors";
  ExpectOneLineError(RunTool(flags),
                     {"NOT_FOUND", "has no tensor 'input.memory'"});
}

TEST(RunModelErrorTest, TruncatedWeights) {
  const std::string full =
      ReadAll(std::string(kDir) + "encoder_layer_gelu.safetensors");
  const std::string truncated = TempPath("truncated.safetensors");
  std::ofstream(truncated, std::ios::binary)
      << full.substr(0, full.size() - 100);
  std::vector<std::string> flags =
      Flags("encoder_layer", "encoder_layer_gelu", TempPath("o.safetensors"));
  flags[1] = "--weights=" + truncated;
  ExpectOneLineError(RunTool(flags), {"DATA_LOSS", "truncated.safetensors"});
}

// Without --config=cuda, --device=cuda is FAILED_PRECONDITION. (A CUDA build
// runs it; the models' CUDA golden test covers that on the GPU machine.)
TEST(RunModelErrorTest, CudaNeedsACudaBuild) {
#ifdef DA_RUN_MODEL_HAS_CUDA
  GTEST_SKIP() << "built with --config=cuda: --device=cuda is available";
#else
  std::vector<std::string> flags =
      Flags("multihead", "multihead_fork", TempPath("o.safetensors"));
  flags.push_back("--device=cuda");
  ExpectOneLineError(RunTool(flags), {"FAILED_PRECONDITION", "--device=cuda"});
#endif
}

TEST(RunModelErrorTest, UnknownDevice) {
  std::vector<std::string> flags =
      Flags("multihead", "multihead_fork", TempPath("o.safetensors"));
  flags.push_back("--device=tpu");
  ExpectOneLineError(RunTool(flags), {"--device=tpu: expected cpu or cuda"});
}

TEST(RunModelErrorTest, UnexpectedPositionalArgument) {
  std::vector<std::string> flags =
      Flags("multihead", "multihead_fork", TempPath("o.safetensors"));
  flags.push_back("extra");
  ExpectOneLineError(RunTool(flags), {"unexpected argument 'extra'"});
}

}  // namespace
}  // namespace dilated
