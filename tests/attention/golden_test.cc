// Every registered implementation, on every test device of this binary,
// against the golden files of tests/data/golden/ (written by
// tools/make_golden.py from an independent PyTorch implementation of
// docs/ARCHITECTURE.md section 1, in float64): out and lse of Forward, grad_q,
// grad_k and grad_v of Backward. A new implementation is covered as soon as it
// registers; a new golden file as soon as it lands in the directory.

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
#include "attention/config.h"
#include "attention/registry.h"
#include "attention/tensor.h"
#include "gtest/gtest.h"
#include "io/safetensors.h"
#include "tests/testing/golden_file.h"
#include "tests/testing/test_device.h"

namespace dilated {
namespace {

using testing::TestDevice;

constexpr char kGoldenDir[] = "tests/data/golden";

// The configuration and causal flag stored in a golden file's metadata.
struct GoldenConfig {
  AttentionConfig config;
  bool is_causal = false;
};

std::vector<int64_t> ParseList(const std::string& text) {
  std::vector<int64_t> values;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    int64_t value = 0;
    EXPECT_TRUE(absl::SimpleAtoi(part, &value)) << "'" << text << "'";
    values.push_back(value);
  }
  return values;
}

GoldenConfig ReadConfig(const io::SafetensorsFile& file) {
  const std::map<std::string, std::string>& metadata = file.metadata();
  GoldenConfig golden;
  golden.config.segment_lengths = ParseList(metadata.at("segment_lengths"));
  golden.config.dilation_rates = ParseList(metadata.at("dilation_rates"));
  golden.is_causal = metadata.at("is_causal") == "true";
  const auto scale = metadata.find("softmax_scale");
  if (scale != metadata.end()) {
    double value = 0.0;
    EXPECT_TRUE(absl::SimpleAtod(scale->second, &value)) << scale->second;
    golden.config.softmax_scale = value;
  }
  return golden;
}

struct GoldenParam {
  std::string implementation;
  std::string path;
  TestDevice* device;
};

std::string Describe(const GoldenParam& p) {
  std::string name = absl::StrCat(p.implementation, "_",
                                  std::filesystem::path(p.path).stem().string(),
                                  "_", DeviceName(p.device->device()));
  for (char& c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

void PrintTo(const GoldenParam& p, std::ostream* os) { *os << Describe(p); }

std::vector<GoldenParam> AllParams() {
  std::vector<GoldenParam> params;
  for (const std::string& name : DilatedAttentionNames()) {
    for (TestDevice* device : testing::TestDevices()) {
      for (const std::string& path : testing::GoldenFiles(kGoldenDir)) {
        params.push_back({name, path, device});
      }
    }
  }
  return params;
}

class GoldenTest : public ::testing::TestWithParam<GoldenParam> {};

TEST_P(GoldenTest, ForwardAndBackwardMatchTheGoldenFile) {
  const GoldenParam& p = GetParam();
  absl::StatusOr<io::SafetensorsFile> file = io::ReadSafetensors(p.path);
  ASSERT_TRUE(file.ok()) << file.status();
  const GoldenConfig golden = ReadConfig(*file);
  absl::StatusOr<std::unique_ptr<Attention>> attention =
      CreateAttention(p.implementation, golden.config);
  ASSERT_TRUE(attention.ok()) << attention.status();

  testing::CheckGoldenFile(**attention, *file, golden.is_causal, p.device);
}

std::string ParamName(const ::testing::TestParamInfo<GoldenParam>& info) {
  return Describe(info.param);
}

INSTANTIATE_TEST_SUITE_P(AllImplementations, GoldenTest,
                         ::testing::ValuesIn(AllParams()), ParamName);

TEST(GoldenFilesTest, EveryDTypeHasGoldenFiles) {
  const std::vector<std::string> files = testing::GoldenFiles(kGoldenDir);
  for (const char* prefix : {"f32_", "f16_", "bf16_"}) {
    EXPECT_TRUE(std::any_of(
        files.begin(), files.end(),
        [&](const std::string& path) {
          return absl::StartsWith(
              std::filesystem::path(path).filename().string(), prefix);
        }))
        << "no golden file starts with " << prefix << " in " << kGoldenDir;
  }
}

}  // namespace
}  // namespace dilated
