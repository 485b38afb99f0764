// Runs the dilated_attention binary under mpirun as a user would
// (`mpirun -np P dilated_attention --impl=ring --comm=mpi ...`): every rank
// reads the whole golden input and computes its shard; rank 0's output file
// must hold the golden outputs and gradients of the whole sequence.

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "io/safetensors.h"
#include "tests/tools/tool_runner.h"

namespace dilated {
namespace {

constexpr char kMpiRun[] = "bazel/mpi_run.sh";
constexpr char kBinary[] = "tools/dilated_attention";
constexpr char kGoldenDir[] = "tests/data/golden/";

struct Param {
  std::string golden;
  int ranks;
  std::string impl;
  std::string placement = "contiguous";
};

std::string ParamName(const ::testing::TestParamInfo<Param>& info) {
  return absl::StrCat(info.param.impl, "_", info.param.golden, "_",
                      info.param.ranks, "ranks_", info.param.placement);
}

class DilatedAttentionMpiTest : public ::testing::TestWithParam<Param> {};

TEST_P(DilatedAttentionMpiTest, RankZeroWritesTheWholeGoldenResult) {
  const Param& p = GetParam();
  const std::string input = kGoldenDir + p.golden + ".safetensors";
  absl::StatusOr<io::SafetensorsFile> golden = io::ReadSafetensors(input);
  ASSERT_TRUE(golden.ok()) << golden.status();
  const std::map<std::string, std::string>& metadata = golden->metadata();
  const std::string output = tools_testing::TempPath(absl::StrCat(
      p.impl, "_", p.golden, "_", p.ranks, "_", p.placement, ".safetensors"));
  std::vector<std::string> args = {
      absl::StrCat(p.ranks),
      kBinary,
      "--impl=" + p.impl,
      "--comm=mpi",
      "--segment_lengths=" + metadata.at("segment_lengths"),
      "--dilation_rates=" + metadata.at("dilation_rates"),
      "--is_causal=" + metadata.at("is_causal"),
      "--input=" + input,
      "--output=" + output,
      "--backward"};
  const auto scale = metadata.find("softmax_scale");
  if (scale != metadata.end()) {
    args.push_back("--softmax_scale=" + scale->second);
  }
  const tools_testing::ToolResult result =
      tools_testing::RunTool(kMpiRun, args);
  ASSERT_EQ(result.exit_code, 0) << result.error;

  absl::StatusOr<io::SafetensorsFile> written = io::ReadSafetensors(output);
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(written->metadata().at("ranks"), absl::StrCat(p.ranks));
  const io::SafetensorsDType dtype = (*golden->Find("q"))->dtype;
  // A few roundings of the file's dtype, as for single-process runs.
  const double tolerance = dtype == io::SafetensorsDType::kF32   ? 1e-5
                           : dtype == io::SafetensorsDType::kF16 ? 4e-3
                                                                 : 3e-2;
  for (const char* name : {"out", "grad_q", "grad_k", "grad_v"}) {
    absl::StatusOr<const io::SafetensorsTensor*> actual = written->Find(name);
    ASSERT_TRUE(actual.ok()) << actual.status();
    EXPECT_EQ((*actual)->shape, (*golden->Find("q"))->shape) << name;
    const std::vector<double> a = (*actual)->ToDoubles();
    const std::vector<double> e = (*golden->Find(name))->ToDoubles();
    ASSERT_EQ(a.size(), e.size()) << name;
    for (size_t i = 0; i < a.size(); ++i) {
      ASSERT_LE(std::abs(a[i] - e[i]), tolerance * (1 + std::abs(e[i])))
          << name << "[" << i << "]";
    }
  }
}

std::vector<Param> AllParams() {
  std::vector<Param> params;
  // Segments that span shards evenly (f16, bf16) and that straddle them
  // unevenly (f32: 12 positions, segments 4 and 6).
  for (const char* golden :
       {"f16_causal_b2", "bf16_uneven_heads", "f32_custom_scale_b2"}) {
    for (int ranks : {2, 4}) {
      for (const char* impl : {"distributed", "ring"}) {
        params.push_back({golden, ranks, impl});
      }
    }
    // Zigzag placement: the length (16) is a multiple of 2P.
    if (std::string(golden) != "f32_custom_scale_b2") {
      params.push_back({golden, 2, "ring", "zigzag"});
      params.push_back({golden, 4, "distributed", "zigzag"});
    }
  }
  return params;
}

INSTANTIATE_TEST_SUITE_P(GoldenFiles, DilatedAttentionMpiTest,
                         ::testing::ValuesIn(AllParams()), ParamName);

TEST(DilatedAttentionMpiErrorTest, SequenceNotAMultipleOfTheRanks) {
  const std::string input =
      absl::StrCat(kGoldenDir, "f32_partial_segments_causal.safetensors");
  const tools_testing::ToolResult result = tools_testing::RunTool(
      kMpiRun,
      {"2", kBinary, "--impl=ring", "--comm=mpi", "--segment_lengths=8,4,16",
       "--dilation_rates=1,2,4", "--input=" + input,
       "--output=" + tools_testing::TempPath("never.safetensors")});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.error.find("multiple of 2 (the number of ranks)"),
            std::string::npos)
      << result.error;
}

}  // namespace
}  // namespace dilated
