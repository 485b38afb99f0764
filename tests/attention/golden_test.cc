// Every registered implementation against the golden files of
// tests/data/golden/ (written by tools/make_golden.py from an independent
// PyTorch implementation of ARCHITECTURE.md section 1, in float64): out and
// lse of Forward, grad_q, grad_k and grad_v of Backward. A new implementation
// is covered as soon as it registers; a new golden file as soon as it lands
// in the directory.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <tuple>
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
#include "kernels/numeric.h"

namespace dilated {
namespace {

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

struct Tolerance {
  double atol;
  double rtol;
};

struct Tolerances {
  Tolerance out;
  Tolerance grad;
  Tolerance lse;
};

Tolerances TolerancesFor(DType dtype) {
  // lse is float32 in every case and its inputs are exact in float32: a few
  // float32 roundings of scores of magnitude < 10.
  constexpr Tolerance kLse = {2e-5, 2e-6};
  switch (dtype) {
    case DType::kFloat32:
      // Float32 accumulation over at most 16 keys of O(1) terms: ~1e-6 error;
      // the backward adds the recomputation of P from lse.
      return {{2e-5, 2e-5}, {5e-5, 1e-4}, kLse};
    case DType::kFloat16:
      // One final rounding to half is 2^-11 relative (4.9e-4); a kernel that
      // also rounds P to half before P.V (as flash kernels do) doubles it.
      return {{2e-3, 4e-3}, {4e-3, 8e-3}, kLse};
    case DType::kBFloat16:
      // One rounding to bfloat16 is 2^-9 relative (2e-3); same allowance for
      // rounding P to bfloat16 before P.V.
      return {{1e-2, 1.6e-2}, {2e-2, 3e-2}, kLse};
  }
  return {};
}

// Returns `count` elements of `dtype` at `data` as doubles.
std::vector<double> ToDoubles(const void* data, DType dtype, int64_t count) {
  std::vector<double> values(count);
  for (int64_t i = 0; i < count; ++i) {
    switch (dtype) {
      case DType::kFloat32:
        values[i] = static_cast<const float*>(data)[i];
        break;
      case DType::kFloat16:
        values[i] = kernels::HalfToFloat(static_cast<const uint16_t*>(data)[i]);
        break;
      case DType::kBFloat16:
        values[i] =
            kernels::BFloat16ToFloat(static_cast<const uint16_t*>(data)[i]);
        break;
    }
  }
  return values;
}

// Expects `actual` to match `expected` element by element:
// |a - e| <= atol + rtol * |e|, or both infinite with the same sign.
void ExpectClose(const std::string& what, const std::vector<double>& actual,
                 const std::vector<double>& expected, Tolerance tolerance) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  int mismatches = 0;
  double max_error = 0.0;
  for (size_t i = 0; i < actual.size(); ++i) {
    const double a = actual[i];
    const double e = expected[i];
    bool ok;
    if (std::isinf(e)) {
      ok = a == e;
    } else {
      const double error = std::abs(a - e);
      ok = error <= tolerance.atol + tolerance.rtol * std::abs(e);
      if (std::isfinite(error)) max_error = std::max(max_error, error);
    }
    if (!ok && ++mismatches <= 5) {
      ADD_FAILURE() << what << "[" << i << "] = " << a << ", expected " << e
                    << " (atol " << tolerance.atol << ", rtol "
                    << tolerance.rtol << ")";
    }
  }
  EXPECT_EQ(mismatches, 0) << what << ": " << mismatches << " of "
                           << actual.size()
                           << " elements differ; max finite error "
                           << max_error;
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

// A host buffer shaped like `like` (same dtype and shape, row-major).
struct Buffer {
  std::vector<uint64_t> storage;
  TensorView view;

  Buffer(const TensorView& like, DType dtype) {
    const int64_t count = like.NumElements();
    storage.assign((count * DTypeSize(dtype) + 7) / 8, 0);
    view = like;
    view.data = storage.data();
    view.dtype = dtype;
  }

  std::vector<double> Values() const {
    return ToDoubles(view.data, view.dtype, view.NumElements());
  }
};

std::vector<double> Expected(const io::SafetensorsFile& file,
                             const std::string& name) {
  absl::StatusOr<const io::SafetensorsTensor*> tensor = file.Find(name);
  EXPECT_TRUE(tensor.ok()) << tensor.status();
  return tensor.ok() ? (*tensor)->ToDoubles() : std::vector<double>();
}

using GoldenParam = std::tuple<std::string, std::string>;  // (name, file)

class GoldenTest : public testing::TestWithParam<GoldenParam> {};

TEST_P(GoldenTest, ForwardAndBackwardMatchTheGoldenFile) {
  const auto& [name, path] = GetParam();
  absl::StatusOr<io::SafetensorsFile> file = io::ReadSafetensors(path);
  ASSERT_TRUE(file.ok()) << file.status();
  const GoldenConfig golden = ReadConfig(*file);
  absl::StatusOr<TensorView> q = file->View("q");
  absl::StatusOr<TensorView> k = file->View("k");
  absl::StatusOr<TensorView> v = file->View("v");
  absl::StatusOr<TensorView> grad_out = file->View("grad_out");
  ASSERT_TRUE(q.ok() && k.ok() && v.ok() && grad_out.ok())
      << q.status() << k.status() << v.status() << grad_out.status();
  const Tolerances tolerances = TolerancesFor(q->dtype);

  absl::StatusOr<std::unique_ptr<Attention>> attention =
      CreateAttention(name, golden.config);
  ASSERT_TRUE(attention.ok()) << attention.status();
  const ForwardOptions options{.is_causal = golden.is_causal};

  Buffer out(*q, q->dtype);
  const TensorView lse_shape = TensorView::Contiguous(
      nullptr, DType::kFloat32, {q->shape[0], q->shape[2], q->shape[1]});
  Buffer lse(lse_shape, DType::kFloat32);
  const absl::Status forward =
      (*attention)->Forward(*q, *k, *v, out.view, options, &lse.view);
  ASSERT_TRUE(forward.ok()) << forward;
  ExpectClose("out", out.Values(), Expected(*file, "out"), tolerances.out);
  ExpectClose("lse", lse.Values(), Expected(*file, "lse"), tolerances.lse);

  Buffer grad_q(*q, q->dtype);
  Buffer grad_k(*q, q->dtype);
  Buffer grad_v(*q, q->dtype);
  const absl::Status backward =
      (*attention)
          ->Backward(*q, *k, *v, out.view, lse.view, *grad_out, grad_q.view,
                     grad_k.view, grad_v.view, options);
  ASSERT_TRUE(backward.ok()) << backward;
  ExpectClose("grad_q", grad_q.Values(), Expected(*file, "grad_q"),
              tolerances.grad);
  ExpectClose("grad_k", grad_k.Values(), Expected(*file, "grad_k"),
              tolerances.grad);
  ExpectClose("grad_v", grad_v.Values(), Expected(*file, "grad_v"),
              tolerances.grad);
}

std::string ParamName(const testing::TestParamInfo<GoldenParam>& info) {
  std::string name = absl::StrCat(
      std::get<0>(info.param), "_",
      std::filesystem::path(std::get<1>(info.param)).stem().string());
  for (char& c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(
    AllImplementations, GoldenTest,
    testing::Combine(testing::ValuesIn(RegisteredAttentionNames()),
                     testing::ValuesIn(GoldenFiles())),
    ParamName);

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
