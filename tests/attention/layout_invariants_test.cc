// The layouts agree with one another: for every registered implementation
// and test device, each sequence of a packed batch gives the same out, lse
// and gradients as that sequence run alone, and as the right-padded batch
// with a key_padding_mask on its valid rows (whose padded rows are zero, lse
// -inf, gradients zero).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "attention/registry.h"
#include "gtest/gtest.h"
#include "tests/testing/compare.h"
#include "tests/testing/test_device.h"
#include "tests/testing/test_tensor.h"

namespace dilated {
namespace {

using testing::AllClose;
using testing::DeviceBytes;
using testing::TestDevice;
using testing::TestTensor;

constexpr int64_t kHeads = 3;
constexpr int64_t kHeadDim = 16;
// Lengths 0 and 1, shorter than every segment, partial segments, whole ones.
const std::vector<int64_t> kLengths = {37, 1, 0, 100, 64};

// The three runs hold the same rows, so only summation order could differ:
// float32 rounding, far below any real disagreement.
constexpr testing::Tolerance kSame = {1e-6, 1e-5};

// out, lse and the three gradients of one run, in row-major order.
struct Results {
  std::vector<double> out, lse, grad_q, grad_k, grad_v;
};

struct Inputs {
  std::vector<double> q, k, v, grad_out;  // [rows, heads, head_dim]
};

// Runs forward and backward on `shape` (q's shape) with `options`, inputs
// given for every row of that shape.
Results RunBothPasses(Attention& attention, TestDevice* device,
                      const std::vector<int64_t>& shape,
                      const std::vector<int64_t>& lse_shape, const Inputs& in,
                      const ForwardOptions& options) {
  const DType dtype = DType::kFloat32;
  TestTensor q(device, dtype, shape), k(device, dtype, shape),
      v(device, dtype, shape), out(device, dtype, shape),
      grad_out(device, dtype, shape), grad_q(device, dtype, shape),
      grad_k(device, dtype, shape), grad_v(device, dtype, shape),
      lse(device, DType::kFloat32, lse_shape);
  q.Upload(in.q);
  k.Upload(in.k);
  v.Upload(in.v);
  grad_out.Upload(in.grad_out);
  Results results;
  const absl::Status forward = attention.Forward(
      q.view(), k.view(), v.view(), out.view(), options, &lse.view());
  EXPECT_TRUE(forward.ok()) << forward;
  if (!forward.ok()) return results;
  const absl::Status backward = attention.Backward(
      q.view(), k.view(), v.view(), out.view(), lse.view(), grad_out.view(),
      grad_q.view(), grad_k.view(), grad_v.view(), options);
  EXPECT_TRUE(backward.ok()) << backward;
  results.out = out.Download();
  results.lse = lse.Download();
  results.grad_q = grad_q.Download();
  results.grad_k = grad_k.Download();
  results.grad_v = grad_v.Download();
  return results;
}

// Returns rows [begin, begin + count) of a [rows, heads, head_dim] tensor.
std::vector<double> RowsOf(const std::vector<double>& x, int64_t begin,
                           int64_t count) {
  const int64_t row = kHeads * kHeadDim;
  return std::vector<double>(x.begin() + begin * row,
                             x.begin() + (begin + count) * row);
}

// Returns entries [begin, begin + count) of every head of a [heads, rows]
// log-sum-exp.
std::vector<double> LseOf(const std::vector<double>& lse, int64_t rows,
                          int64_t begin, int64_t count) {
  std::vector<double> picked;
  for (int64_t h = 0; h < kHeads; ++h) {
    picked.insert(picked.end(), lse.begin() + h * rows + begin,
                  lse.begin() + h * rows + begin + count);
  }
  return picked;
}

void ExpectSameRows(const Results& actual, const Results& expected,
                    const std::string& what) {
  EXPECT_TRUE(AllClose(actual.out, expected.out, kSame)) << what << " out";
  EXPECT_TRUE(AllClose(actual.lse, expected.lse, kSame)) << what << " lse";
  EXPECT_TRUE(AllClose(actual.grad_q, expected.grad_q, kSame))
      << what << " grad_q";
  EXPECT_TRUE(AllClose(actual.grad_k, expected.grad_k, kSame))
      << what << " grad_k";
  EXPECT_TRUE(AllClose(actual.grad_v, expected.grad_v, kSame))
      << what << " grad_v";
}

struct Param {
  std::string implementation;
  bool is_causal;
  TestDevice* device;
};

std::string ParamName(const ::testing::TestParamInfo<Param>& info) {
  return absl::StrReplaceAll(
      absl::StrCat(info.param.implementation,
                   info.param.is_causal ? "_causal_" : "_full_",
                   DeviceName(info.param.device->device())),
      {{":", ""}});
}

std::vector<Param> AllParams() {
  std::vector<Param> params;
  for (const std::string& name : RegisteredAttentionNames()) {
    // This suite's lengths are not multiples of a block; packed
    // block_sparse is checked per sequence in block_sparse_test.cc.
    if (name == "block_sparse") continue;
    for (TestDevice* device : testing::TestDevices()) {
      // longnet on CUDA takes 16-bit tensors only (docs/LONGNET_MIXING.md);
      // this suite runs float32.
      if (name == "longnet" && device->device().type != DeviceType::kCpu) {
        continue;
      }
      for (bool causal : {false, true})
        params.push_back({name, causal, device});
    }
  }
  return params;
}

class LayoutInvariantsTest : public ::testing::TestWithParam<Param> {};

TEST_P(LayoutInvariantsTest, PackedEqualsAloneEqualsPaddedWithMask) {
  const Param& p = GetParam();
  AttentionConfig config;
  config.segment_lengths = {16, 32, 64};
  config.dilation_rates = {1, 2, 4};
  absl::StatusOr<std::unique_ptr<Attention>> attention =
      CreateAttention(p.implementation, config);
  ASSERT_TRUE(attention.ok()) << attention.status();

  std::vector<int64_t> starts = {0};
  for (int64_t length : kLengths) starts.push_back(starts.back() + length);
  const int64_t total = starts.back();
  const int64_t batch = static_cast<int64_t>(kLengths.size());
  const int64_t longest = *std::max_element(kLengths.begin(), kLengths.end());
  const int64_t row = kHeads * kHeadDim;
  std::mt19937 rng(5);
  Inputs packed_in;
  for (std::vector<double>* x :
       {&packed_in.q, &packed_in.k, &packed_in.v, &packed_in.grad_out}) {
    *x = testing::RandomValues(total * row, 2.0, DType::kFloat32, &rng);
  }

  ForwardOptions packed_options;
  packed_options.is_causal = p.is_causal;
  std::vector<int32_t> offsets(starts.begin(), starts.end());
  const DeviceBytes offsets_on_device(p.device, offsets.data(),
                                      offsets.size() * sizeof(int32_t));
  packed_options.cu_seqlens = TensorView::Contiguous(
      offsets_on_device.data(), DType::kInt32, {batch + 1}, p.device->device());
  const Results packed =
      RunBothPasses(**attention, p.device, {total, kHeads, kHeadDim},
                    {kHeads, total}, packed_in, packed_options);
  if (HasFailure()) return;

  // The same sequences right-padded to the longest, zeros in the padding.
  Inputs padded_in;
  std::vector<uint8_t> mask(batch * longest, 1);
  for (std::vector<double>* x :
       {&padded_in.q, &padded_in.k, &padded_in.v, &padded_in.grad_out}) {
    x->assign(batch * longest * row, 0.0);
  }
  for (int64_t b = 0; b < batch; ++b) {
    std::fill(mask.begin() + b * longest,
              mask.begin() + b * longest + kLengths[b], 0);
    const std::vector<double>* from[] = {&packed_in.q, &packed_in.k,
                                         &packed_in.v, &packed_in.grad_out};
    std::vector<double>* to[] = {&padded_in.q, &padded_in.k, &padded_in.v,
                                 &padded_in.grad_out};
    for (int t = 0; t < 4; ++t) {
      std::copy(from[t]->begin() + starts[b] * row,
                from[t]->begin() + starts[b + 1] * row,
                to[t]->begin() + b * longest * row);
    }
  }
  ForwardOptions padded_options;
  padded_options.is_causal = p.is_causal;
  const DeviceBytes mask_on_device(p.device, mask.data(), mask.size());
  padded_options.key_padding_mask =
      TensorView::Contiguous(mask_on_device.data(), DType::kBool,
                             {batch, longest}, p.device->device());
  const Results padded =
      RunBothPasses(**attention, p.device, {batch, longest, kHeads, kHeadDim},
                    {batch, kHeads, longest}, padded_in, padded_options);
  if (HasFailure()) return;

  for (int64_t b = 0; b < batch; ++b) {
    const int64_t n = kLengths[b];
    Results from_packed;
    from_packed.out = RowsOf(packed.out, starts[b], n);
    from_packed.lse = LseOf(packed.lse, total, starts[b], n);
    from_packed.grad_q = RowsOf(packed.grad_q, starts[b], n);
    from_packed.grad_k = RowsOf(packed.grad_k, starts[b], n);
    from_packed.grad_v = RowsOf(packed.grad_v, starts[b], n);
    // Batch entry b of the padded run is rows b * longest .. of a
    // [batch * longest, heads, head_dim] view; its lse is [heads, longest].
    Results from_padded;
    from_padded.out = RowsOf(padded.out, b * longest, n);
    from_padded.lse = LseOf(
        std::vector<double>(padded.lse.begin() + b * kHeads * longest,
                            padded.lse.begin() + (b + 1) * kHeads * longest),
        longest, 0, n);
    from_padded.grad_q = RowsOf(padded.grad_q, b * longest, n);
    from_padded.grad_k = RowsOf(padded.grad_k, b * longest, n);
    from_padded.grad_v = RowsOf(padded.grad_v, b * longest, n);
    const std::string sequence = absl::StrCat("sequence ", b, " (", n, ")");
    ExpectSameRows(from_padded, from_packed, sequence + " padded vs packed");

    // Padded rows: out and gradients zero, lse -inf.
    const int64_t pad = longest - n;
    const std::vector<double> zeros(pad * row, 0.0);
    EXPECT_EQ(RowsOf(padded.out, b * longest + n, pad), zeros) << sequence;
    EXPECT_EQ(RowsOf(padded.grad_q, b * longest + n, pad), zeros) << sequence;
    EXPECT_EQ(RowsOf(padded.grad_k, b * longest + n, pad), zeros) << sequence;
    EXPECT_EQ(RowsOf(padded.grad_v, b * longest + n, pad), zeros) << sequence;
    const std::vector<double> padded_lse = LseOf(
        std::vector<double>(padded.lse.begin() + b * kHeads * longest,
                            padded.lse.begin() + (b + 1) * kHeads * longest),
        longest, n, pad);
    EXPECT_EQ(padded_lse,
              std::vector<double>(padded_lse.size(),
                                  -std::numeric_limits<double>::infinity()))
        << sequence;

    if (n == 0) continue;
    Inputs alone_in;
    alone_in.q = RowsOf(packed_in.q, starts[b], n);
    alone_in.k = RowsOf(packed_in.k, starts[b], n);
    alone_in.v = RowsOf(packed_in.v, starts[b], n);
    alone_in.grad_out = RowsOf(packed_in.grad_out, starts[b], n);
    ForwardOptions alone_options;
    alone_options.is_causal = p.is_causal;
    const Results alone =
        RunBothPasses(**attention, p.device, {1, n, kHeads, kHeadDim},
                      {1, kHeads, n}, alone_in, alone_options);
    ExpectSameRows(from_packed, alone, sequence + " packed vs alone");
  }
}

INSTANTIATE_TEST_SUITE_P(AllImplementations, LayoutInvariantsTest,
                         ::testing::ValuesIn(AllParams()), ParamName);

}  // namespace
}  // namespace dilated
