// "longnet" on every test device against an oracle written in this file
// from the mixing rule alone: every branch (s_i, r_i) computed separately on
// every head (torchscale's head offsets), then merged with weights
// exp(lse_i) / sum_j exp(lse_j). The same function as one softmax over the
// union of the branches' keys with multiplicity (masked_oracle.h) gives the
// analytic gradient, which central differences of the branch oracle check;
// the kernels' gradients are compared with it.

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "attention/registry.h"
#include "gtest/gtest.h"
#include "tests/testing/attention_run.h"
#include "tests/testing/compare.h"
#include "tests/testing/masked_oracle.h"
#include "tests/testing/test_device.h"
#include "tests/testing/test_tensor.h"

namespace dilated {
namespace {

using testing::AllClose;
using testing::AttentionInputs;
using testing::AttentionResults;
using testing::MaskedProblem;
using testing::TestDevice;

constexpr double kMinusInf = -std::numeric_limits<double>::infinity();

struct Case {
  std::string label;
  int64_t batch;
  int64_t seq_len;
  int64_t num_heads;
  int64_t head_dim;
  std::vector<int64_t> segment_lengths;
  std::vector<int64_t> dilation_rates;
  bool holes = false;
};

std::vector<Case> Cases() {
  return {
      {"three_branches", 1, 32, 4, 8, {8, 16, 32}, {1, 2, 4}},
      {"partial_segments", 2, 45, 3, 16, {8, 16, 32}, {1, 2, 4}},
      {"fewer_heads_than_rate", 1, 32, 2, 8, {16, 32}, {1, 4}},
      {"uneven_head_groups", 1, 48, 5, 8, {12, 24}, {1, 3}},
      {"one_branch", 1, 40, 2, 8, {16}, {2}},
      {"key_padding", 2, 40, 2, 16, {8, 40}, {1, 2}, true},
      {"dim64_tiles", 1, 256, 2, 64, {128, 256}, {1, 2}},
  };
}

std::vector<uint8_t> Holes(const Case& c) {
  if (!c.holes) return {};
  return testing::RandomPadding(c.batch * c.seq_len, 17);
}

// The oracle's view of one call.
struct Problem {
  Case c;
  bool causal;
  std::vector<uint8_t> padding;

  double scale() const { return 1.0 / std::sqrt(double(c.head_dim)); }
  bool Padded(int64_t b, int64_t n) const {
    return !padding.empty() && padding[b * c.seq_len + n];
  }
  int64_t Index(int64_t b, int64_t n, int64_t h, int64_t a) const {
    return ((b * c.seq_len + n) * c.num_heads + h) * c.head_dim + a;
  }
  // The keys of row `row` in branch i on head h: empty when the branch does
  // not select the row. Head h has offset h / ceil(heads / r) (torchscale).
  std::vector<int64_t> BranchKeys(int64_t i, int64_t b, int64_t h,
                                  int64_t row) const {
    const int64_t s = c.segment_lengths[i];
    const int64_t r = c.dilation_rates[i];
    const int64_t offset = h / ((c.num_heads + r - 1) / r);
    const int64_t start = row / s * s;
    const int64_t end = std::min(start + s, c.seq_len);
    std::vector<int64_t> keys;
    if (row - start < offset || (row - start - offset) % r != 0) return keys;
    if (Padded(b, row)) return keys;
    for (int64_t key = start + offset; key < end; key += r) {
      if (causal && key > row) break;
      if (!Padded(b, key)) keys.push_back(key);
    }
    return keys;
  }
};

// Branch by branch, then merged by the branches' lse.
void BranchOracle(const Problem& p, const std::vector<double>& q,
                  const std::vector<double>& k, const std::vector<double>& v,
                  std::vector<double>* out, std::vector<double>* lse) {
  const Case& c = p.c;
  out->assign(q.size(), 0.0);
  lse->assign(c.batch * c.num_heads * c.seq_len, kMinusInf);
  const int64_t branches = c.segment_lengths.size();
  for (int64_t b = 0; b < c.batch; ++b) {
    for (int64_t h = 0; h < c.num_heads; ++h) {
      for (int64_t row = 0; row < c.seq_len; ++row) {
        std::vector<std::vector<double>> outs(branches);
        std::vector<double> lses(branches, kMinusInf);
        for (int64_t i = 0; i < branches; ++i) {
          const std::vector<int64_t> keys = p.BranchKeys(i, b, h, row);
          outs[i].assign(c.head_dim, 0.0);
          if (keys.empty()) continue;
          std::vector<double> scores;
          for (int64_t key : keys) {
            double dot = 0.0;
            for (int64_t a = 0; a < c.head_dim; ++a) {
              dot += q[p.Index(b, row, h, a)] * k[p.Index(b, key, h, a)];
            }
            scores.push_back(p.scale() * dot);
          }
          const double max = *std::max_element(scores.begin(), scores.end());
          double sum = 0.0;
          for (double s : scores) sum += std::exp(s - max);
          for (size_t e = 0; e < keys.size(); ++e) {
            const double w = std::exp(scores[e] - max) / sum;
            for (int64_t a = 0; a < c.head_dim; ++a) {
              outs[i][a] += w * v[p.Index(b, keys[e], h, a)];
            }
          }
          lses[i] = max + std::log(sum);
        }
        const double max = *std::max_element(lses.begin(), lses.end());
        if (max == kMinusInf) continue;
        double total = 0.0;
        for (double l : lses) total += std::exp(l - max);
        for (int64_t i = 0; i < branches; ++i) {
          const double w = std::exp(lses[i] - max) / total;
          for (int64_t a = 0; a < c.head_dim; ++a) {
            (*out)[p.Index(b, row, h, a)] += w * outs[i][a];
          }
        }
        (*lse)[(b * c.num_heads + h) * c.seq_len + row] = max + std::log(total);
      }
    }
  }
}

// The union of the branches' keys with multiplicity.
MaskedProblem UnionOracle(const Problem& p) {
  const Case& c = p.c;
  MaskedProblem m;
  m.batch = c.batch;
  m.seq_len = c.seq_len;
  m.num_heads = c.num_heads;
  m.head_dim = c.head_dim;
  m.softmax_scale = p.scale();
  const int64_t n = c.seq_len;
  m.key_weights.assign(c.batch * c.num_heads * n * n, 0.0);
  for (int64_t b = 0; b < c.batch; ++b) {
    for (int64_t h = 0; h < c.num_heads; ++h) {
      for (int64_t row = 0; row < n; ++row) {
        for (size_t i = 0; i < c.segment_lengths.size(); ++i) {
          for (int64_t key : p.BranchKeys(i, b, h, row)) {
            m.key_weights[((b * c.num_heads + h) * n + row) * n + key] += 1.0;
          }
        }
      }
    }
  }
  return m;
}

AttentionInputs Inputs(const Case& c, DType dtype, bool causal) {
  AttentionInputs in = testing::RandomInputs(
      {c.batch, c.seq_len, c.num_heads, c.head_dim}, dtype, causal, 21);
  in.key_padding_mask = Holes(c);
  return in;
}

TEST(LongNetOracleTest, BranchMergeIsOneSoftmaxOverTheUnion) {
  for (const Case& c : Cases()) {
    for (bool causal : {false, true}) {
      const AttentionInputs in = Inputs(c, DType::kFloat32, causal);
      const Problem p{c, causal, in.key_padding_mask};
      std::vector<double> out, lse, union_out, union_lse;
      BranchOracle(p, in.q, in.k, in.v, &out, &lse);
      testing::MaskedForward(UnionOracle(p), in.q, in.k, in.v, &union_out,
                             &union_lse);
      // Two float64 evaluations of one function.
      EXPECT_TRUE(AllClose(union_out, out, {1e-12, 1e-10})) << c.label;
      EXPECT_TRUE(AllClose(union_lse, lse, {1e-12, 1e-10})) << c.label;
    }
  }
}

TEST(LongNetOracleTest, AnalyticGradientMatchesCentralDifferences) {
  const Case c{"small", 1, 12, 3, 4, {4, 12}, {1, 3}};
  for (bool causal : {false, true}) {
    const AttentionInputs in = Inputs(c, DType::kFloat32, causal);
    const Problem p{c, causal, {}};
    std::vector<double> gq, gk, gv;
    testing::MaskedBackward(UnionOracle(p), in.q, in.k, in.v, in.grad_out, &gq,
                            &gk, &gv);
    auto loss = [&](const std::vector<double>& q, const std::vector<double>& k,
                    const std::vector<double>& v) {
      std::vector<double> out, lse;
      BranchOracle(p, q, k, v, &out, &lse);
      double sum = 0.0;
      for (size_t e = 0; e < out.size(); ++e) sum += out[e] * in.grad_out[e];
      return sum;
    };
    // Step 1e-5: truncation error ~1e-10 and cancellation ~1e-11 in float64.
    constexpr double kStep = 1e-5;
    for (size_t e = 0; e < in.q.size(); e += 5) {
      for (int t = 0; t < 3; ++t) {
        std::vector<double> q = in.q, k = in.k, v = in.v;
        std::vector<double>& x = t == 0 ? q : t == 1 ? k : v;
        x[e] += kStep;
        const double up = loss(q, k, v);
        x[e] -= 2 * kStep;
        const double down = loss(q, k, v);
        const double numeric = (up - down) / (2 * kStep);
        const double analytic = t == 0 ? gq[e] : t == 1 ? gk[e] : gv[e];
        EXPECT_NEAR(analytic, numeric, 1e-7) << "tensor " << t << " at " << e;
      }
    }
  }
}

struct Param {
  Case c;
  DType dtype;
  bool causal;
  TestDevice* device;
};

std::vector<Param> AllParams() {
  std::vector<Param> params;
  for (TestDevice* device : testing::TestDevices()) {
    for (const Case& c : Cases()) {
      for (DType dtype : {DType::kFloat32, DType::kFloat16, DType::kBFloat16}) {
        for (bool causal : {false, true}) {
          params.push_back({c, dtype, causal, device});
        }
      }
    }
  }
  return params;
}

std::string ParamName(const ::testing::TestParamInfo<Param>& info) {
  const Param& p = info.param;
  std::string name = absl::StrCat(p.c.label, "_", DTypeName(p.dtype),
                                  p.causal ? "_causal_" : "_full_",
                                  DeviceName(p.device->device()));
  name.erase(std::remove(name.begin(), name.end(), ':'), name.end());
  return name;
}

class LongNetConformanceTest : public ::testing::TestWithParam<Param> {};

TEST_P(LongNetConformanceTest, MatchesBranchMergeOracle) {
  const Param& p = GetParam();
  AttentionConfig config;
  config.segment_lengths = p.c.segment_lengths;
  config.dilation_rates = p.c.dilation_rates;
  absl::StatusOr<std::unique_ptr<Attention>> attention =
      CreateAttention("longnet", config);
  ASSERT_TRUE(attention.ok()) << attention.status();
  const AttentionInputs in = Inputs(p.c, p.dtype, p.causal);
  const AttentionResults got = testing::RunAttention(
      **attention, p.device, p.dtype, testing::Layout::kPadded, in);
  if ((got.forward.code() == absl::StatusCode::kFailedPrecondition ||
       got.forward.code() == absl::StatusCode::kUnimplemented) &&
      p.device->device().type != DeviceType::kCpu) {
    // No device kernel in this build, or none for this dtype (longnet on
    // CUDA takes float16 and bfloat16); the CPU must run every case.
    GTEST_SKIP() << got.forward;
  }
  ASSERT_TRUE(got.forward.ok()) << got.forward;
  ASSERT_TRUE(got.backward.ok()) << got.backward;
  const Problem problem{p.c, p.causal, in.key_padding_mask};
  testing::ExpectedResults want;
  BranchOracle(problem, in.q, in.k, in.v, &want.out, &want.lse);
  testing::MaskedBackward(UnionOracle(problem), in.q, in.k, in.v, in.grad_out,
                          &want.grad_q, &want.grad_k, &want.grad_v);
  testing::ExpectResultsMatch(got, want, p.dtype);
}

INSTANTIATE_TEST_SUITE_P(Branches, LongNetConformanceTest,
                         ::testing::ValuesIn(AllParams()), ParamName);

}  // namespace
}  // namespace dilated
