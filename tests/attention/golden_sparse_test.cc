// "block_sparse" and "longnet", on every test device of this binary, against
// the golden files of tests/data/golden_sparse/ (written by
// tools/make_golden_sparse.py from independent PyTorch implementations of
// docs/BLOCK_SPARSE.md and docs/LONGNET_MIXING.md, in float64): out and lse
// of Forward, grad_q, grad_k and grad_v of Backward. A file's metadata names
// its function and configuration; a new file is covered as soon as it lands
// in the directory.

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "attention/attention.h"
#include "attention/block_layout.h"
#include "attention/config.h"
#include "attention/registry.h"
#include "gtest/gtest.h"
#include "io/safetensors.h"
#include "tests/testing/golden_file.h"
#include "tests/testing/test_device.h"

namespace dilated {
namespace {

using testing::TestDevice;

constexpr char kGoldenDir[] = "tests/data/golden_sparse";

int64_t ParseInt(absl::string_view text) {
  int64_t value = 0;
  EXPECT_TRUE(absl::SimpleAtoi(text, &value)) << "'" << text << "'";
  return value;
}

std::vector<int64_t> ParseList(const std::string& text) {
  std::vector<int64_t> values;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    values.push_back(ParseInt(part));
  }
  return values;
}

// "stride:window,stride:window,..."
std::vector<HierarchicalLevel> ParseLevels(const std::string& text) {
  std::vector<HierarchicalLevel> levels;
  for (absl::string_view level : absl::StrSplit(text, ',')) {
    const std::vector<absl::string_view> parts = absl::StrSplit(level, ':');
    EXPECT_EQ(parts.size(), 2u) << "'" << text << "'";
    if (parts.size() == 2) {
      levels.push_back({ParseInt(parts[0]), ParseInt(parts[1])});
    }
  }
  return levels;
}

// The function, configuration and causal flag of a golden file.
struct GoldenCase {
  std::string function;
  AttentionConfig config;
  bool is_causal = false;
};

BlockSparseConfig ReadBlockSparse(const io::SafetensorsFile& file) {
  const std::map<std::string, std::string>& metadata = file.metadata();
  BlockSparseConfig sparse;
  sparse.block_size = ParseInt(metadata.at("block_size"));
  const absl::StatusOr<BlockPattern> pattern =
      ParseBlockPattern(metadata.at("pattern"));
  EXPECT_TRUE(pattern.ok()) << pattern.status();
  if (pattern.ok()) sparse.pattern = *pattern;
  if (metadata.count("window")) sparse.window = ParseInt(metadata.at("window"));
  if (metadata.count("global_tokens")) {
    sparse.global_tokens = ParseInt(metadata.at("global_tokens"));
  }
  if (metadata.count("sparse_dilation_rates")) {
    sparse.sparse_dilation_rates =
        ParseList(metadata.at("sparse_dilation_rates"));
  }
  if (metadata.count("hierarchical_levels")) {
    sparse.hierarchical_levels =
        ParseLevels(metadata.at("hierarchical_levels"));
  }
  if (sparse.pattern == BlockPattern::kCustom) {
    // BOOL [heads, nb, nb].
    const absl::StatusOr<const io::SafetensorsTensor*> layout =
        file.Find("block_layout");
    EXPECT_TRUE(layout.ok()) << layout.status();
    if (layout.ok() && (*layout)->shape.size() == 3) {
      sparse.custom_layout.heads = (*layout)->shape[0];
      sparse.custom_layout.num_blocks = (*layout)->shape[1];
      for (double active : (*layout)->ToDoubles()) {
        sparse.custom_layout.active.push_back(active != 0.0);
      }
    }
  }
  return sparse;
}

GoldenCase ReadCase(const io::SafetensorsFile& file) {
  const std::map<std::string, std::string>& metadata = file.metadata();
  GoldenCase golden;
  golden.function = metadata.at("function");
  golden.is_causal = metadata.at("is_causal") == "true";
  const auto scale = metadata.find("softmax_scale");
  if (scale != metadata.end()) {
    double value = 0.0;
    EXPECT_TRUE(absl::SimpleAtod(scale->second, &value)) << scale->second;
    golden.config.softmax_scale = value;
  }
  if (golden.function == "longnet") {
    golden.config.segment_lengths = ParseList(metadata.at("segment_lengths"));
    golden.config.dilation_rates = ParseList(metadata.at("dilation_rates"));
  } else {
    golden.config.block_sparse = ReadBlockSparse(file);
  }
  return golden;
}

struct GoldenParam {
  std::string path;
  TestDevice* device;
};

std::string Describe(const GoldenParam& p) {
  std::string name = absl::StrCat(std::filesystem::path(p.path).stem().string(),
                                  "_", DeviceName(p.device->device()));
  for (char& c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

void PrintTo(const GoldenParam& p, std::ostream* os) { *os << Describe(p); }

std::vector<GoldenParam> AllParams() {
  std::vector<GoldenParam> params;
  for (TestDevice* device : testing::TestDevices()) {
    for (const std::string& path : testing::GoldenFiles(kGoldenDir)) {
      params.push_back({path, device});
    }
  }
  return params;
}

class GoldenSparseTest : public ::testing::TestWithParam<GoldenParam> {};

TEST_P(GoldenSparseTest, ForwardAndBackwardMatchTheGoldenFile) {
  const GoldenParam& p = GetParam();
  absl::StatusOr<io::SafetensorsFile> file = io::ReadSafetensors(p.path);
  ASSERT_TRUE(file.ok()) << file.status();
  const GoldenCase golden = ReadCase(*file);
  absl::StatusOr<std::unique_ptr<Attention>> attention =
      CreateAttention(golden.function, golden.config);
  ASSERT_TRUE(attention.ok()) << attention.status();
  testing::CheckGoldenFile(**attention, *file, golden.is_causal, p.device);
}

std::string ParamName(const ::testing::TestParamInfo<GoldenParam>& info) {
  return Describe(info.param);
}

INSTANTIATE_TEST_SUITE_P(BlockSparseAndLongNet, GoldenSparseTest,
                         ::testing::ValuesIn(AllParams()), ParamName);

TEST(GoldenSparseFilesTest, EveryFunctionAndDTypeHasGoldenFiles) {
  const std::vector<std::string> files = testing::GoldenFiles(kGoldenDir);
  for (const char* function : {"block_sparse", "longnet"}) {
    for (const char* prefix : {"f32_", "f16_", "bf16_"}) {
      EXPECT_TRUE(
          std::any_of(files.begin(), files.end(),
                      [&](const std::string& path) {
                        const std::string name =
                            std::filesystem::path(path).filename().string();
                        return absl::StartsWith(name, prefix) &&
                               absl::StrContains(name, function);
                      }))
          << "no " << prefix << " golden file of " << function << " in "
          << kGoldenDir;
    }
  }
}

}  // namespace
}  // namespace dilated
