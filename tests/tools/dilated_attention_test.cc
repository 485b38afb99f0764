// Runs the dilated_attention binary as a user would: on golden inputs (its
// outputs must match the golden expectations) and on bad command lines and
// bad files (it must exit non-zero with one clear line on stderr).

#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "io/safetensors.h"
#include "tests/testing/dropout_oracle.h"
#include "tests/testing/oracle.h"
#include "tests/tools/tool_runner.h"

namespace dilated {
namespace {

using ::testing::HasSubstr;

constexpr char kBinary[] = "tools/dilated_attention";
constexpr char kGoldenDir[] = "tests/data/golden/";

using tools_testing::ReadAll;
using tools_testing::TempPath;
using tools_testing::ToolResult;

ToolResult RunTool(const std::vector<std::string>& args) {
  return tools_testing::RunTool(kBinary, args);
}

void ExpectOneLineError(const ToolResult& result,
                        const std::vector<std::string>& parts) {
  tools_testing::ExpectOneLineError(result, "dilated_attention", parts);
}

// The flags that reproduce a golden file's configuration.
std::vector<std::string> GoldenFlags(const io::SafetensorsFile& golden) {
  const std::map<std::string, std::string>& metadata = golden.metadata();
  std::vector<std::string> flags = {
      "--segment_lengths=" + metadata.at("segment_lengths"),
      "--dilation_rates=" + metadata.at("dilation_rates"),
      "--is_causal=" + metadata.at("is_causal"),
  };
  const auto scale = metadata.find("softmax_scale");
  if (scale != metadata.end()) {
    flags.push_back("--softmax_scale=" + scale->second);
  }
  return flags;
}

// Returns the largest |actual - expected| / (atol + rtol * |expected|).
double WorstRatio(const io::SafetensorsTensor& actual,
                  const io::SafetensorsTensor& expected, double atol,
                  double rtol) {
  const std::vector<double> a = actual.ToDoubles();
  const std::vector<double> e = expected.ToDoubles();
  EXPECT_EQ(a.size(), e.size()) << actual.name;
  double worst = 0.0;
  for (size_t i = 0; i < a.size() && i < e.size(); ++i) {
    const double ratio = std::abs(a[i] - e[i]) / (atol + rtol * std::abs(e[i]));
    worst = std::isnan(ratio) ? INFINITY : std::max(worst, ratio);
  }
  return worst;
}

class GoldenRunTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenRunTest, WritesTheGoldenOutputsAndGradients) {
  const std::string input = kGoldenDir + GetParam() + ".safetensors";
  absl::StatusOr<io::SafetensorsFile> golden = io::ReadSafetensors(input);
  ASSERT_TRUE(golden.ok()) << golden.status();
  const std::string output = TempPath(GetParam() + "_out.safetensors");
  std::vector<std::string> args = GoldenFlags(*golden);
  args.insert(args.end(), {"--impl=standard", "--input=" + input,
                           "--output=" + output, "--backward"});
  const ToolResult result = RunTool(args);
  ASSERT_EQ(result.exit_code, 0) << result.error;
  EXPECT_EQ(result.error, "");

  absl::StatusOr<io::SafetensorsFile> written = io::ReadSafetensors(output);
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(written->metadata().at("impl"), "standard");
  const io::SafetensorsDType dtype = (*golden->Find("q"))->dtype;
  // The tool writes results in the dtype of q: allow a few roundings of that
  // dtype (the golden test holds every implementation to the tight bounds).
  const double tolerance = dtype == io::SafetensorsDType::kF32   ? 1e-5
                           : dtype == io::SafetensorsDType::kF16 ? 4e-3
                                                                 : 3e-2;
  for (const char* name : {"out", "grad_q", "grad_k", "grad_v"}) {
    absl::StatusOr<const io::SafetensorsTensor*> actual = written->Find(name);
    ASSERT_TRUE(actual.ok()) << actual.status();
    EXPECT_EQ((*actual)->dtype, dtype) << name;
    EXPECT_EQ((*actual)->shape, (*golden->Find("q"))->shape) << name;
    EXPECT_LE(WorstRatio(**actual, **golden->Find(name), tolerance, tolerance),
              1.0)
        << name;
  }
}

INSTANTIATE_TEST_SUITE_P(OneFilePerDType, GoldenRunTest,
                         ::testing::Values("f32_offset_beyond_segment_causal",
                                           "f16_causal_b2",
                                           "bf16_causal_custom_scale_b2"));

TEST(DilatedAttentionToolTest, ForwardOnlyWritesOut) {
  const std::string input =
      absl::StrCat(kGoldenDir, "f32_uneven_heads.safetensors");
  absl::StatusOr<io::SafetensorsFile> golden = io::ReadSafetensors(input);
  ASSERT_TRUE(golden.ok()) << golden.status();
  const std::string output = TempPath("forward_only.safetensors");
  std::vector<std::string> args = GoldenFlags(*golden);
  args.insert(args.end(),
              {"--impl=auto", "--input=" + input, "--output=" + output});
  const ToolResult result = RunTool(args);
  ASSERT_EQ(result.exit_code, 0) << result.error;
  absl::StatusOr<io::SafetensorsFile> written = io::ReadSafetensors(output);
  ASSERT_TRUE(written.ok()) << written.status();
  ASSERT_EQ(written->tensors().size(), 1u);
  EXPECT_LE(
      WorstRatio(**written->Find("out"), **golden->Find("out"), 1e-5, 1e-5),
      1.0);
}

// Arguments of a valid run on `input`, except for what a test overrides.
std::vector<std::string> ValidArgs(const std::string& input) {
  return {"--impl=standard", "--segment_lengths=4,8", "--dilation_rates=1,2",
          "--input=" + input, "--output=" + TempPath("unused.safetensors")};
}

std::string UnevenHeadsInput() {
  return absl::StrCat(kGoldenDir, "f32_uneven_heads.safetensors");
}

// A float32 input file with the given layout tensors, and the oracle's
// expected `out` for it (segments {4, 8}, rates {1, 2}, 2 heads of 8).
struct LayoutInput {
  std::string path;
  std::vector<double> expected_out;
};

LayoutInput WriteLayoutInput(const std::string& name,
                             const std::vector<int64_t>& seq_lens,
                             const std::vector<uint8_t>& mask, int64_t batch,
                             int64_t seq_len) {
  testing::OracleProblem problem;
  problem.batch = batch;
  problem.seq_len = seq_len;
  problem.num_heads = 2;
  problem.head_dim = 8;
  problem.segment_lengths = {4, 8};
  problem.dilation_rates = {1, 2};
  problem.softmax_scale = 1.0 / std::sqrt(8.0);
  problem.seq_lens = seq_lens;
  problem.key_padding_mask = mask;
  std::vector<float> q(problem.NumElements()), k(q.size()), v(q.size());
  for (size_t i = 0; i < q.size(); ++i) {
    q[i] = std::sin(0.37 * i);
    k[i] = std::cos(0.21 * i);
    v[i] = std::sin(0.05 * i + 1.0);
  }
  const std::vector<double> qd(q.begin(), q.end()), kd(k.begin(), k.end()),
      vd(v.begin(), v.end());
  LayoutInput input;
  input.path = TempPath(name + ".safetensors");
  std::vector<double> lse;
  testing::OracleForward(problem, qd, kd, vd, &input.expected_out, &lse);
  const std::vector<int64_t> shape =
      seq_lens.empty() ? std::vector<int64_t>{batch, seq_len, 2, 8}
                       : std::vector<int64_t>{problem.Rows(), 2, 8};
  std::vector<io::NamedTensor> tensors = {
      {"q", io::SafetensorsDType::kF32, shape, q.data()},
      {"k", io::SafetensorsDType::kF32, shape, k.data()},
      {"v", io::SafetensorsDType::kF32, shape, v.data()}};
  std::vector<int64_t> offsets = {0};
  for (int64_t length : seq_lens) offsets.push_back(offsets.back() + length);
  if (!seq_lens.empty()) {
    tensors.push_back({"cu_seqlens",
                       io::SafetensorsDType::kI64,
                       {static_cast<int64_t>(offsets.size())},
                       offsets.data()});
  }
  if (!mask.empty()) {
    tensors.push_back({"key_padding_mask",
                       io::SafetensorsDType::kU8,
                       {batch, seq_len},
                       mask.data()});
  }
  EXPECT_TRUE(io::WriteSafetensors(input.path, tensors).ok());
  return input;
}

std::vector<double> RunForOut(const std::string& input) {
  const std::string output = TempPath("layout_out.safetensors");
  const ToolResult result =
      RunTool({"--impl=auto", "--segment_lengths=4,8", "--dilation_rates=1,2",
               "--input=" + input, "--output=" + output});
  EXPECT_EQ(result.exit_code, 0) << result.error;
  absl::StatusOr<io::SafetensorsFile> written = io::ReadSafetensors(output);
  if (!written.ok()) return {};
  return (*written->Find("out"))->ToDoubles();
}

// float32 kernels against the float64 oracle: a few float32 roundings.
void ExpectNear(const std::vector<double>& actual,
                const std::vector<double>& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    EXPECT_NEAR(actual[i], expected[i], 1e-5) << i;
  }
}

TEST(DilatedAttentionToolTest, RunsPackedSequencesFromCuSeqlens) {
  const LayoutInput input =
      WriteLayoutInput("packed", {5, 0, 11}, {}, /*batch=*/0, /*seq_len=*/0);
  ExpectNear(RunForOut(input.path), input.expected_out);
}

TEST(DilatedAttentionToolTest, RunsAKeyPaddingMask) {
  std::vector<uint8_t> mask(2 * 12, 0);
  for (int n : {3, 9, 10, 11}) mask[n] = 1;
  for (int n : {12 + 0, 12 + 7}) mask[n] = 1;
  const LayoutInput input = WriteLayoutInput("masked", {}, mask, 2, 12);
  ExpectNear(RunForOut(input.path), input.expected_out);
}

// --dropout trains with the Philox mask of --dropout_seed and
// --dropout_offset: out equals the dropout oracle's for that stream, and
// another seed gives another out.
TEST(DilatedAttentionToolTest, RunsDropoutWithTheGivenRandomStream) {
  const LayoutInput input = WriteLayoutInput("dropout", {}, {}, 2, 16);
  absl::StatusOr<io::SafetensorsFile> file = io::ReadSafetensors(input.path);
  ASSERT_TRUE(file.ok()) << file.status();
  testing::DropoutOracleProblem problem;
  problem.batch = 2;
  problem.seq_len = 16;
  problem.num_heads = 2;
  problem.head_dim = 8;
  problem.segment_lengths = {4, 8};
  problem.dilation_rates = {1, 2};
  problem.softmax_scale = 1.0 / std::sqrt(8.0);
  problem.dropout = 0.25;
  problem.seed = 7;
  problem.offset = 3;
  std::vector<double> expected, lse;
  testing::DropoutOracleForward(
      problem, (*file->Find("q"))->ToDoubles(), (*file->Find("k"))->ToDoubles(),
      (*file->Find("v"))->ToDoubles(), &expected, &lse);
  auto run = [&](const std::string& seed) {
    const std::string output = TempPath("dropout_out.safetensors");
    const ToolResult result = RunTool(
        {"--impl=improved", "--segment_lengths=4,8", "--dilation_rates=1,2",
         "--dropout=0.25", "--dropout_seed=" + seed, "--dropout_offset=3",
         "--input=" + input.path, "--output=" + output});
    EXPECT_EQ(result.exit_code, 0) << result.error;
    absl::StatusOr<io::SafetensorsFile> written = io::ReadSafetensors(output);
    if (!written.ok()) return std::vector<double>();
    return (*written->Find("out"))->ToDoubles();
  };
  ExpectNear(run("7"), expected);
  const std::vector<double> other = run("8");
  ASSERT_EQ(other.size(), expected.size());
  int64_t different = 0;
  for (size_t i = 0; i < other.size(); ++i) {
    different += std::abs(other[i] - expected[i]) > 1e-5;
  }
  EXPECT_GT(different, 0);
}

TEST(DilatedAttentionToolTest, RejectsADropoutOutsideItsRange) {
  std::vector<std::string> args = ValidArgs(UnevenHeadsInput());
  args.push_back("--dropout=1.5");
  ExpectOneLineError(RunTool(args),
                     {"INVALID_ARGUMENT", "dropout must be in [0, 1)", "1.5"});
}

TEST(DilatedAttentionToolTest, RejectsBadCuSeqlens) {
  const LayoutInput input = WriteLayoutInput("bad_offsets", {5, 11}, {}, 0, 0);
  // Rewrite cu_seqlens so that it does not reach the total of 16 rows.
  absl::StatusOr<io::SafetensorsFile> file = io::ReadSafetensors(input.path);
  ASSERT_TRUE(file.ok());
  const std::vector<double> q = (*file->Find("q"))->ToDoubles();
  const std::vector<float> values(q.begin(), q.end());
  const int32_t offsets[] = {0, 5, 15};
  const std::string path = TempPath("bad_offsets_i32.safetensors");
  ASSERT_TRUE(
      io::WriteSafetensors(
          path, {{"q", io::SafetensorsDType::kF32, {16, 2, 8}, values.data()},
                 {"k", io::SafetensorsDType::kF32, {16, 2, 8}, values.data()},
                 {"v", io::SafetensorsDType::kF32, {16, 2, 8}, values.data()},
                 {"cu_seqlens", io::SafetensorsDType::kI32, {3}, offsets}})
          .ok());
  std::vector<std::string> args = ValidArgs(path);
  ExpectOneLineError(RunTool(args),
                     {"INVALID_ARGUMENT", "cu_seqlens[2] = 15", "16"});
  const float not_offsets[] = {0, 5, 16};
  ASSERT_TRUE(
      io::WriteSafetensors(
          path, {{"q", io::SafetensorsDType::kF32, {16, 2, 8}, values.data()},
                 {"k", io::SafetensorsDType::kF32, {16, 2, 8}, values.data()},
                 {"v", io::SafetensorsDType::kF32, {16, 2, 8}, values.data()},
                 {"cu_seqlens", io::SafetensorsDType::kF32, {3}, not_offsets}})
          .ok());
  ExpectOneLineError(
      RunTool(ValidArgs(path)),
      {"INVALID_ARGUMENT", "'cu_seqlens' must be I32 or I64", "F32"});
}

TEST(DilatedAttentionToolTest, RejectsAMaskOfTheWrongShape) {
  const std::vector<uint8_t> mask(12, 0);
  const LayoutInput input = WriteLayoutInput("short_mask", {}, {}, 2, 12);
  absl::StatusOr<io::SafetensorsFile> file = io::ReadSafetensors(input.path);
  ASSERT_TRUE(file.ok());
  const std::vector<double> q = (*file->Find("q"))->ToDoubles();
  const std::vector<float> values(q.begin(), q.end());
  const std::string path = TempPath("short_mask_file.safetensors");
  ASSERT_TRUE(
      io::WriteSafetensors(
          path,
          {{"q", io::SafetensorsDType::kF32, {2, 12, 2, 8}, values.data()},
           {"k", io::SafetensorsDType::kF32, {2, 12, 2, 8}, values.data()},
           {"v", io::SafetensorsDType::kF32, {2, 12, 2, 8}, values.data()},
           {"key_padding_mask",
            io::SafetensorsDType::kBool,
            {1, 12},
            mask.data()}})
          .ok());
  ExpectOneLineError(RunTool(ValidArgs(path)),
                     {"INVALID_ARGUMENT",
                      "key_padding_mask must have shape [batch, seq] = "
                      "[2, 12], got [1, 12]"});
}

TEST(DilatedAttentionToolTest, RejectsAnUnknownImplementation) {
  std::vector<std::string> args = ValidArgs(UnevenHeadsInput());
  args[0] = "--impl=no_such_attention";
  ExpectOneLineError(RunTool(args),
                     {"NOT_FOUND", "'no_such_attention'", "standard"});
}

TEST(DilatedAttentionToolTest, RejectsAMissingImplFlag) {
  std::vector<std::string> args = ValidArgs(UnevenHeadsInput());
  args.erase(args.begin());
  ExpectOneLineError(RunTool(args), {"--impl is required"});
}

TEST(DilatedAttentionToolTest, RejectsABadConfiguration) {
  std::vector<std::string> args = ValidArgs(UnevenHeadsInput());
  args[1] = "--segment_lengths=4,x";
  ExpectOneLineError(RunTool(args), {"--segment_lengths", "'x'"});
  args[1] = "--segment_lengths=4";
  ExpectOneLineError(RunTool(args),
                     {"INVALID_ARGUMENT", "same length", "1 != 2"});
  args[1] = "--segment_lengths=4,0";
  ExpectOneLineError(RunTool(args),
                     {"INVALID_ARGUMENT", "segment_lengths[1]", "0"});
}

TEST(DilatedAttentionToolTest, AcceptsASegmentLongerThanTheSequence) {
  // 16 positions with a segment of 32: one partial segment.
  std::vector<std::string> args = ValidArgs(UnevenHeadsInput());
  args[1] = "--segment_lengths=4,32";
  const ToolResult result = RunTool(args);
  EXPECT_EQ(result.exit_code, 0) << result.error;
}

TEST(DilatedAttentionToolTest, RejectsAMissingInputFile) {
  ExpectOneLineError(RunTool(ValidArgs(TempPath("absent.safetensors"))),
                     {"NOT_FOUND", "absent.safetensors"});
}

TEST(DilatedAttentionToolTest, RejectsAMissingTensor) {
  const std::vector<float> data(16 * 5 * 8, 0.5f);
  const std::string input = TempPath("no_v.safetensors");
  ASSERT_TRUE(
      io::WriteSafetensors(
          input,
          {{"q", io::SafetensorsDType::kF32, {1, 16, 5, 8}, data.data()},
           {"k", io::SafetensorsDType::kF32, {1, 16, 5, 8}, data.data()}})
          .ok());
  ExpectOneLineError(RunTool(ValidArgs(input)),
                     {"NOT_FOUND", "no_v.safetensors", "no tensor 'v'"});
}

TEST(DilatedAttentionToolTest, RejectsBackwardWithoutGradOut) {
  const std::vector<float> data(16 * 5 * 8, 0.5f);
  const std::string input = TempPath("no_grad_out.safetensors");
  ASSERT_TRUE(
      io::WriteSafetensors(
          input,
          {{"q", io::SafetensorsDType::kF32, {1, 16, 5, 8}, data.data()},
           {"k", io::SafetensorsDType::kF32, {1, 16, 5, 8}, data.data()},
           {"v", io::SafetensorsDType::kF32, {1, 16, 5, 8}, data.data()}})
          .ok());
  std::vector<std::string> args = ValidArgs(input);
  EXPECT_EQ(RunTool(args).exit_code, 0);
  args.push_back("--backward");
  ExpectOneLineError(RunTool(args), {"NOT_FOUND", "no tensor 'grad_out'"});
}

TEST(DilatedAttentionToolTest, RejectsWrongShapes) {
  const std::vector<float> data(16 * 5 * 8, 0.5f);
  const std::string three_d = TempPath("three_d.safetensors");
  ASSERT_TRUE(
      io::WriteSafetensors(
          three_d, {{"q", io::SafetensorsDType::kF32, {16, 5, 8}, data.data()},
                    {"k", io::SafetensorsDType::kF32, {16, 5, 8}, data.data()},
                    {"v", io::SafetensorsDType::kF32, {16, 5, 8}, data.data()}})
          .ok());
  ExpectOneLineError(RunTool(ValidArgs(three_d)),
                     {"INVALID_ARGUMENT", "tensor 'q'", "[16, 5, 8]"});

  const std::string mismatch = TempPath("mismatch.safetensors");
  ASSERT_TRUE(
      io::WriteSafetensors(
          mismatch,
          {{"q", io::SafetensorsDType::kF32, {1, 16, 5, 8}, data.data()},
           {"k", io::SafetensorsDType::kF32, {1, 16, 5, 8}, data.data()},
           {"v", io::SafetensorsDType::kF32, {1, 16, 8, 5}, data.data()}})
          .ok());
  ExpectOneLineError(RunTool(ValidArgs(mismatch)),
                     {"INVALID_ARGUMENT", "v.shape [1, 16, 8, 5]"});
}

TEST(DilatedAttentionToolTest, RejectsATruncatedFile) {
  const std::string bytes = ReadAll(UnevenHeadsInput());
  ASSERT_GT(bytes.size(), 1000u);
  const std::string input = TempPath("truncated.safetensors");
  {
    std::ofstream stream(input, std::ios::binary | std::ios::trunc);
    stream << bytes.substr(0, bytes.size() - 1000);
  }
  ExpectOneLineError(RunTool(ValidArgs(input)),
                     {"DATA_LOSS", "truncated.safetensors", "truncated"});
}

TEST(DilatedAttentionToolTest, RejectsAnInputThatIsNotSafetensors) {
  const std::string input = TempPath("text.safetensors");
  {
    std::ofstream stream(input, std::ios::binary | std::ios::trunc);
    stream << "this is a text file, not tensors";
  }
  ExpectOneLineError(RunTool(ValidArgs(input)),
                     {"DATA_LOSS", "text.safetensors", "header length"});
}

TEST(DilatedAttentionToolTest, RejectsAnUnknownDevice) {
  std::vector<std::string> args = ValidArgs(UnevenHeadsInput());
  args.push_back("--device=tpu");
  ExpectOneLineError(RunTool(args), {"--device", "'tpu'"});
}

// Holds until the tool stages tensors on CUDA devices (tools/tensor_staging.h).
TEST(DilatedAttentionToolTest, CudaIsAFailedPreconditionForNow) {
  std::vector<std::string> args = ValidArgs(UnevenHeadsInput());
  args.push_back("--device=cuda");
  ExpectOneLineError(RunTool(args), {"FAILED_PRECONDITION", "--device=cuda"});
}

TEST(DilatedAttentionToolTest, RejectsStrayArguments) {
  std::vector<std::string> args = ValidArgs(UnevenHeadsInput());
  args.push_back("stray");
  ExpectOneLineError(RunTool(args), {"'stray'"});
}

}  // namespace
}  // namespace dilated
