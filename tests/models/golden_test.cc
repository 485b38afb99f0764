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
#include "tests/models/golden_cases.h"
#include "tests/models/model_test_util.h"
#include "tests/testing/compare.h"

namespace dilated {
namespace models {
namespace {

using ::dilated::models::testing::ToDoubles;
using ::dilated::testing::AllClose;

using ::dilated::models::testing::CaseModule;
using ::dilated::models::testing::Cases;
using ::dilated::models::testing::GoldenCase;
using ::dilated::models::testing::GoldenDir;
using ::dilated::models::testing::Kind;
using ::dilated::models::testing::LayerFor;
using ::dilated::models::testing::LoadCaseModule;
using ::dilated::models::testing::LongNetFor;

// Builds the case's module, loads its weights from `path` and runs it.
absl::StatusOr<Tensor> RunCase(const GoldenCase& c, const std::string& core,
                               const std::string& path, const Tensor& x,
                               const Tensor* memory) {
  DA_ASSIGN_OR_RETURN(CaseModule module, LoadCaseModule(c, core, path));
  if (module.multihead) {
    if (memory == nullptr) return module.multihead->Forward(x, c.is_causal);
    return module.multihead->Forward(x, *memory, *memory, c.is_causal);
  }
  if (module.encoder) return module.encoder->Forward(x, c.is_causal);
  if (module.decoder) {
    return module.decoder->Forward(x, *memory, c.is_causal, c.is_causal);
  }
  return module.longnet->Forward(x, c.is_causal);
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
  const std::string path = GoldenDir() + c.name + ".safetensors";
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
      io::ReadSafetensors(GoldenDir() + c.name + ".expected.safetensors");
  ASSERT_TRUE(expected.ok()) << expected.status();
  absl::StatusOr<const io::SafetensorsTensor*> want = expected->Find("y");
  ASSERT_TRUE(want.ok()) << want.status();
  EXPECT_EQ((*want)->shape, y->shape());
  EXPECT_TRUE(AllClose(ToDoubles(*y), (*want)->ToDoubles(), c.tolerance));
}

std::vector<Param> AllParams() {
  std::vector<Param> params;
  for (const std::string& core : DilatedAttentionNames()) {
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
  for (const auto& entry : std::filesystem::directory_iterator(GoldenDir())) {
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
  const std::string path = GoldenDir() + "multihead_fork.safetensors";
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
