// Every registered implementation, on every test device of this binary,
// against the golden files of tests/data/golden/ (written by
// tools/make_golden.py from an independent PyTorch implementation of
// docs/ARCHITECTURE.md section 1, in float64): out and lse of Forward, grad_q,
// grad_k and grad_v of Backward. A new implementation is covered as soon as it
// registers; a new golden file as soon as it lands in the directory.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
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
#include "tests/testing/compare.h"
#include "tests/testing/test_device.h"
#include "tests/testing/test_tensor.h"

namespace dilated {
namespace {

using testing::AllClose;
using testing::DeviceBytes;
using testing::TestDevice;
using testing::TestTensor;

constexpr char kGoldenDir[] = "tests/data/golden";

// Returns the golden files, sorted (paths relative to the runfiles root).
std::vector<std::string> GoldenFiles() {
  std::vector<std::string> files;
  std::error_code error;
  for (const auto& entry :
       std::filesystem::directory_iterator(kGoldenDir, error)) {
    const std::string path = entry.path().string();
    if (absl::EndsWith(path, ".safetensors")) files.push_back(path);
  }
  std::sort(files.begin(), files.end());
  return files;
}

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

std::vector<double> Expected(const io::SafetensorsFile& file,
                             const std::string& name) {
  absl::StatusOr<const io::SafetensorsTensor*> tensor = file.Find(name);
  EXPECT_TRUE(tensor.ok()) << tensor.status();
  return tensor.ok() ? (*tensor)->ToDoubles() : std::vector<double>();
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
      for (const std::string& path : GoldenFiles()) {
        params.push_back({name, path, device});
      }
    }
  }
  return params;
}

// Returns a tensor on `device` holding the input `name` of `file`.
std::unique_ptr<TestTensor> Input(const io::SafetensorsFile& file,
                                  const std::string& name, TestDevice* device) {
  absl::StatusOr<TensorView> view = file.View(name);
  EXPECT_TRUE(view.ok()) << view.status();
  if (!view.ok()) return nullptr;
  auto tensor = std::make_unique<TestTensor>(
      device, view->dtype,
      std::vector<int64_t>(view->shape.begin(),
                           view->shape.begin() + view->rank));
  tensor->Upload((*file.Find(name))->ToDoubles());
  return tensor;
}

// Copies the optional layout tensor `name` (cu_seqlens, key_padding_mask) of
// `file` to `device` and points *view at it; returns null (and leaves *view
// unset) when the file has none.
std::unique_ptr<DeviceBytes> LayoutInput(const io::SafetensorsFile& file,
                                         const std::string& name,
                                         TestDevice* device,
                                         std::optional<TensorView>* view) {
  if (!file.Find(name).ok()) return nullptr;
  absl::StatusOr<TensorView> host = file.View(name);
  EXPECT_TRUE(host.ok()) << host.status();
  if (!host.ok()) return nullptr;
  auto bytes = std::make_unique<DeviceBytes>(
      device, host->data, host->NumElements() * DTypeSize(host->dtype));
  *view = *host;
  (*view)->data = bytes->data();
  (*view)->device = device->device();
  return bytes;
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

  const std::unique_ptr<TestTensor> q = Input(*file, "q", p.device);
  const std::unique_ptr<TestTensor> k = Input(*file, "k", p.device);
  const std::unique_ptr<TestTensor> v = Input(*file, "v", p.device);
  const std::unique_ptr<TestTensor> grad_out =
      Input(*file, "grad_out", p.device);
  ASSERT_TRUE(q && k && v && grad_out);
  const DType dtype = q->view().dtype;
  const std::vector<int64_t> shape(q->view().shape.begin(),
                                   q->view().shape.begin() + q->view().rank);
  // Packed files ([total, h, d], with cu_seqlens) have lse [h, total].
  const bool packed = shape.size() == 3;
  TestTensor out(p.device, dtype, shape);
  TestTensor lse(p.device, DType::kFloat32,
                 packed ? std::vector<int64_t>{shape[1], shape[0]}
                        : std::vector<int64_t>{shape[0], shape[2], shape[1]});
  TestTensor grad_q(p.device, dtype, shape);
  TestTensor grad_k(p.device, dtype, shape);
  TestTensor grad_v(p.device, dtype, shape);

  ForwardOptions options;
  options.is_causal = golden.is_causal;
  const std::unique_ptr<DeviceBytes> cu_seqlens =
      LayoutInput(*file, "cu_seqlens", p.device, &options.cu_seqlens);
  const std::unique_ptr<DeviceBytes> mask = LayoutInput(
      *file, "key_padding_mask", p.device, &options.key_padding_mask);
  const absl::Status forward = (*attention)
                                   ->Forward(q->view(), k->view(), v->view(),
                                             out.view(), options, &lse.view());
  if (forward.code() == absl::StatusCode::kUnimplemented &&
      p.device->device().type != DeviceType::kCpu) {
    // A device backend without this layout says so; the CPU must run all.
    GTEST_SKIP() << forward;
  }
  ASSERT_TRUE(forward.ok()) << forward;
  EXPECT_TRUE(AllClose(out.Download(), Expected(*file, "out"),
                       testing::OutputTolerance(dtype)))
      << "out";
  // The log-sum-exp is float32 whatever the storage type; its error comes
  // from the float32 scores of inputs that are exact in every dtype.
  EXPECT_TRUE(AllClose(lse.Download(), Expected(*file, "lse"), {1e-4, 1e-4}))
      << "lse";

  const absl::Status backward =
      (*attention)
          ->Backward(q->view(), k->view(), v->view(), out.view(), lse.view(),
                     grad_out->view(), grad_q.view(), grad_k.view(),
                     grad_v.view(), options);
  ASSERT_TRUE(backward.ok()) << backward;
  const testing::Tolerance tolerance = testing::GradientTolerance(dtype);
  EXPECT_TRUE(AllClose(grad_q.Download(), Expected(*file, "grad_q"), tolerance))
      << "grad_q";
  EXPECT_TRUE(AllClose(grad_k.Download(), Expected(*file, "grad_k"), tolerance))
      << "grad_k";
  EXPECT_TRUE(AllClose(grad_v.Download(), Expected(*file, "grad_v"), tolerance))
      << "grad_v";
}

std::string ParamName(const ::testing::TestParamInfo<GoldenParam>& info) {
  return Describe(info.param);
}

INSTANTIATE_TEST_SUITE_P(AllImplementations, GoldenTest,
                         ::testing::ValuesIn(AllParams()), ParamName);

TEST(GoldenFilesTest, EveryDTypeHasGoldenFiles) {
  const std::vector<std::string> files = GoldenFiles();
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
