// Every registered implementation of the dilated function
// (DilatedAttentionNames; block_sparse and longnet have suites of their own),
// on every test device of this binary, over shapes x causal x dtypes, compared
// with the float64 oracle: forward output, log-sum-exp and the three gradients.
// Shapes cover the fixed-length layout with whole and partial segments, key
// padding (at the end and with holes) and packed variable-length batches
// (sequences shorter than a segment, of length 1 and of length 0). A new
// implementation is covered as soon as it registers.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "attention/registry.h"
#include "gtest/gtest.h"
#include "tests/testing/compare.h"
#include "tests/testing/oracle.h"
#include "tests/testing/test_device.h"
#include "tests/testing/test_tensor.h"

namespace dilated {
namespace {

using testing::AllClose;
using testing::DeviceBytes;
using testing::Layout;
using testing::OracleProblem;
using testing::TestDevice;
using testing::TestTensor;

// Which positions a shape's key_padding_mask marks as padding.
enum class Padding {
  kNone,
  // Sequence b keeps its first seq_len - 13 * b positions (at least 1).
  kAtTheEnd,
  // Every position with probability 0.3, from a fixed seed.
  kHoles,
};

struct Shape {
  std::string label;
  int64_t batch;
  int64_t seq_len;
  int64_t num_heads;
  int64_t head_dim;
  std::vector<int64_t> segment_lengths;
  std::vector<int64_t> dilation_rates;
  std::optional<double> softmax_scale;
  Layout layout = Layout::kContiguous;
  Padding padding = Padding::kNone;
  // Packed layout when not empty: the sequences' lengths (batch and seq_len
  // unused).
  std::vector<int64_t> packed_lengths = {};
};

Shape Padded(Shape shape, Padding padding) {
  shape.padding = padding;
  return shape;
}

Shape Packed(std::string label, std::vector<int64_t> lengths, int64_t num_heads,
             int64_t head_dim, std::vector<int64_t> segment_lengths,
             std::vector<int64_t> dilation_rates) {
  Shape shape{std::move(label),
              0,
              0,
              num_heads,
              head_dim,
              std::move(segment_lengths),
              std::move(dilation_rates)};
  shape.packed_lengths = std::move(lengths);
  return shape;
}

std::vector<Shape> Shapes() {
  return {
      {"one_group", 1, 16, 2, 8, {8}, {1}},
      {"uneven_heads", 1, 32, 5, 16, {4, 8, 16}, {1, 2, 4}},
      {"same_rate_offsets", 1, 18, 3, 8, {9, 9, 9}, {3, 3, 3}},
      {"offset_beyond_segment", 1, 8, 3, 8, {4, 4, 2}, {1, 2, 4}},
      {"batch3_dim24", 3, 32, 4, 24, {16, 32}, {1, 2}},
      {"dim64", 2, 64, 2, 64, {32, 64}, {1, 2}},
      {"dim128", 1, 64, 2, 128, {64}, {2}},
      {"long_segments", 1, 600, 2, 16, {150, 300}, {1, 2}},
      {"tile_spanning", 1, 512, 2, 32, {256, 512}, {1, 3}},
      {"custom_scale", 2, 24, 4, 8, {6, 12}, {1, 2}, 0.3},
      {"negative_scale", 1, 300, 2, 32, {128, 256}, {1, 2}, -0.4},
      {"padded_layout",
       2,
       32,
       3,
       16,
       {8, 16},
       {2, 1},
       std::nullopt,
       Layout::kPadded},
      {"partial_segments", 2, 45, 3, 16, {8, 16, 32}, {1, 2, 4}},
      {"shorter_than_segments", 1, 5, 2, 8, {8, 16}, {1, 2}},
      {"partial_tiles", 1, 300, 2, 32, {128, 256}, {1, 2}},
      Padded({"padding_at_end", 3, 64, 4, 16, {16, 32}, {1, 2}},
             Padding::kAtTheEnd),
      Padded({"padding_holes", 2, 90, 3, 16, {32, 64, 90}, {1, 2, 3}},
             Padding::kHoles),
      Padded({"padding_holes_long", 1, 400, 2, 32, {200, 400}, {1, 2}},
             Padding::kHoles),
      Packed("packed", {37, 1, 0, 64, 130, 5}, 3, 16, {16, 32, 64}, {1, 2, 4}),
      Packed("packed_long", {200, 70, 333}, 2, 64, {128, 256}, {1, 2}),
  };
}

// Returns the [batch, seq] key padding mask of `s` (empty without padding).
std::vector<uint8_t> PaddingMask(const Shape& s) {
  std::vector<uint8_t> mask;
  if (s.padding == Padding::kNone) return mask;
  mask.assign(s.batch * s.seq_len, 0);
  std::mt19937 rng(99);
  std::bernoulli_distribution hole(0.3);
  for (int64_t b = 0; b < s.batch; ++b) {
    const int64_t kept = std::max<int64_t>(1, s.seq_len - 13 * b);
    for (int64_t n = 0; n < s.seq_len; ++n) {
      mask[b * s.seq_len + n] =
          s.padding == Padding::kAtTheEnd ? n >= kept : hole(rng);
    }
  }
  return mask;
}

struct Param {
  std::string implementation;
  Shape shape;
  DType dtype;
  bool is_causal;
  TestDevice* device;
};

std::string Describe(const Param& p) {
  std::string name = absl::StrCat(
      p.implementation, "_", p.shape.label, "_", DTypeName(p.dtype),
      p.is_causal ? "_causal_" : "_full_", DeviceName(p.device->device()));
  return absl::StrReplaceAll(name, {{":", ""}});
}

std::string ParamName(const ::testing::TestParamInfo<Param>& info) {
  return Describe(info.param);
}

void PrintTo(const Param& p, std::ostream* os) { *os << Describe(p); }

std::vector<Param> AllParams() {
  std::vector<Param> params;
  for (const std::string& name : DilatedAttentionNames()) {
    for (TestDevice* device : testing::TestDevices()) {
      for (const Shape& shape : Shapes()) {
        for (DType dtype :
             {DType::kFloat32, DType::kFloat16, DType::kBFloat16}) {
          for (bool causal : {false, true}) {
            params.push_back({name, shape, dtype, causal, device});
          }
        }
      }
    }
  }
  return params;
}

class ConformanceTest : public ::testing::TestWithParam<Param> {};

TEST_P(ConformanceTest, MatchesOracle) {
  const Param& p = GetParam();
  const Shape& s = p.shape;
  AttentionConfig config;
  config.segment_lengths = s.segment_lengths;
  config.dilation_rates = s.dilation_rates;
  config.softmax_scale = s.softmax_scale;
  absl::StatusOr<std::unique_ptr<Attention>> attention =
      CreateAttention(p.implementation, config);
  ASSERT_TRUE(attention.ok()) << attention.status();

  OracleProblem problem;
  problem.batch = s.batch;
  problem.seq_len = s.seq_len;
  problem.num_heads = s.num_heads;
  problem.head_dim = s.head_dim;
  problem.segment_lengths = s.segment_lengths;
  problem.dilation_rates = s.dilation_rates;
  problem.is_causal = p.is_causal;
  problem.softmax_scale = s.softmax_scale.value_or(
      1.0 / std::sqrt(static_cast<double>(s.head_dim)));
  problem.key_padding_mask = PaddingMask(s);
  problem.seq_lens = s.packed_lengths;
  const bool packed = !s.packed_lengths.empty();

  std::mt19937 rng(1234);
  const int64_t count = problem.NumElements();
  // Range 2 makes softmax rows peaked enough that a wrong key set shows.
  const std::vector<double> q =
      testing::RandomValues(count, 2.0, p.dtype, &rng);
  const std::vector<double> k =
      testing::RandomValues(count, 2.0, p.dtype, &rng);
  const std::vector<double> v =
      testing::RandomValues(count, 1.0, p.dtype, &rng);
  const std::vector<double> grad_out =
      testing::RandomValues(count, 1.0, p.dtype, &rng);

  const std::vector<int64_t> shape =
      packed
          ? std::vector<int64_t>{problem.Rows(), s.num_heads, s.head_dim}
          : std::vector<int64_t>{s.batch, s.seq_len, s.num_heads, s.head_dim};
  const std::vector<int64_t> lse_shape =
      packed ? std::vector<int64_t>{s.num_heads, problem.Rows()}
             : std::vector<int64_t>{s.batch, s.num_heads, s.seq_len};
  TestTensor q_t(p.device, p.dtype, shape, s.layout);
  TestTensor k_t(p.device, p.dtype, shape, s.layout);
  TestTensor v_t(p.device, p.dtype, shape, s.layout);
  TestTensor out_t(p.device, p.dtype, shape, s.layout);
  TestTensor grad_out_t(p.device, p.dtype, shape, s.layout);
  TestTensor grad_q_t(p.device, p.dtype, shape, s.layout);
  TestTensor grad_k_t(p.device, p.dtype, shape, s.layout);
  TestTensor grad_v_t(p.device, p.dtype, shape, s.layout);
  TestTensor lse_t(p.device, DType::kFloat32, lse_shape);
  q_t.Upload(q);
  k_t.Upload(k);
  v_t.Upload(v);
  grad_out_t.Upload(grad_out);

  ForwardOptions options;
  options.is_causal = p.is_causal;
  std::vector<int32_t> offsets = {0};
  for (int64_t length : s.packed_lengths) {
    offsets.push_back(offsets.back() + static_cast<int32_t>(length));
  }
  const DeviceBytes offsets_on_device(p.device, offsets.data(),
                                      offsets.size() * sizeof(int32_t));
  if (packed) {
    options.cu_seqlens = TensorView::Contiguous(
        offsets_on_device.data(), DType::kInt32,
        {static_cast<int64_t>(offsets.size())}, p.device->device());
  }
  const DeviceBytes mask_on_device(p.device, problem.key_padding_mask.data(),
                                   problem.key_padding_mask.size());
  if (s.padding != Padding::kNone) {
    options.key_padding_mask =
        TensorView::Contiguous(mask_on_device.data(), DType::kBool,
                               {s.batch, s.seq_len}, p.device->device());
  }
  const absl::Status forward =
      (*attention)
          ->Forward(q_t.view(), k_t.view(), v_t.view(), out_t.view(), options,
                    &lse_t.view());
  if (forward.code() == absl::StatusCode::kUnimplemented &&
      p.device->device().type != DeviceType::kCpu) {
    // A device backend without this layout says so; the CPU must run all.
    GTEST_SKIP() << forward;
  }
  ASSERT_TRUE(forward.ok()) << forward;
  std::vector<double> expected_out, expected_lse;
  testing::OracleForward(problem, q, k, v, &expected_out, &expected_lse);
  EXPECT_TRUE(AllClose(out_t.Download(), expected_out,
                       testing::OutputTolerance(p.dtype)))
      << "out";
  // The log-sum-exp is float32 whatever the storage type; its error comes
  // from the float32 scores of inputs that are exact in every dtype.
  EXPECT_TRUE(AllClose(lse_t.Download(), expected_lse, {1e-4, 1e-4})) << "lse";
  EXPECT_TRUE(out_t.PaddingIntact()) << "out written outside its elements";

  const absl::Status backward =
      (*attention)
          ->Backward(q_t.view(), k_t.view(), v_t.view(), out_t.view(),
                     lse_t.view(), grad_out_t.view(), grad_q_t.view(),
                     grad_k_t.view(), grad_v_t.view(), options);
  ASSERT_TRUE(backward.ok()) << backward;
  std::vector<double> expected_gq, expected_gk, expected_gv;
  testing::OracleBackward(problem, q, k, v, grad_out, &expected_gq,
                          &expected_gk, &expected_gv);
  const testing::Tolerance tolerance = testing::GradientTolerance(p.dtype);
  EXPECT_TRUE(AllClose(grad_q_t.Download(), expected_gq, tolerance))
      << "grad_q";
  EXPECT_TRUE(AllClose(grad_k_t.Download(), expected_gk, tolerance))
      << "grad_k";
  EXPECT_TRUE(AllClose(grad_v_t.Download(), expected_gv, tolerance))
      << "grad_v";
  for (const TestTensor* t : {&grad_q_t, &grad_k_t, &grad_v_t}) {
    EXPECT_TRUE(t->PaddingIntact()) << "gradient written outside its elements";
  }
}

INSTANTIATE_TEST_SUITE_P(AllImplementations, ConformanceTest,
                         ::testing::ValuesIn(AllParams()), ParamName);

}  // namespace
}  // namespace dilated
