// The oracle's analytic gradients against central finite differences of its
// own forward pass, in float64.

#include "tests/testing/oracle.h"

#include <cmath>
#include <random>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"

namespace dilated {
namespace testing {
namespace {

// Returns sum(out * weights) for the oracle's forward pass.
double Loss(const OracleProblem& p, const std::vector<double>& q,
            const std::vector<double>& k, const std::vector<double>& v,
            const std::vector<double>& weights) {
  std::vector<double> out, lse;
  OracleForward(p, q, k, v, &out, &lse);
  double loss = 0.0;
  for (size_t i = 0; i < out.size(); ++i) loss += out[i] * weights[i];
  return loss;
}

// The sequence layouts the gradients are checked in.
enum class Variant { kFixed, kPartialSegments, kKeyPadding, kPacked };

class OracleGradientTest
    : public ::testing::TestWithParam<std::tuple<bool, Variant>> {};

TEST_P(OracleGradientTest, MatchesCentralDifferences) {
  OracleProblem p;
  p.batch = 2;
  p.seq_len = 12;
  p.num_heads = 3;
  p.head_dim = 4;
  p.segment_lengths = {4, 6, 12};
  p.dilation_rates = {1, 2, 3};
  p.is_causal = std::get<0>(GetParam());
  p.softmax_scale = 0.7;
  switch (std::get<1>(GetParam())) {
    case Variant::kFixed:
      break;
    case Variant::kPartialSegments:
      p.seq_len = 11;  // 4 and 6 leave partial last segments, 12 one.
      break;
    case Variant::kKeyPadding:
      p.key_padding_mask.assign(p.batch * p.seq_len, 0);
      for (int64_t n : {0, 5, 10, 11}) p.key_padding_mask[n] = 1;
      for (int64_t n : {3, 4, 7}) p.key_padding_mask[p.seq_len + n] = 1;
      break;
    case Variant::kPacked:
      p.seq_lens = {5, 0, 1, 9};
      break;
  }
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> uniform(-1.5, 1.5);
  auto random = [&] {
    std::vector<double> x(p.NumElements());
    for (double& e : x) e = uniform(rng);
    return x;
  };
  std::vector<double> q = random(), k = random(), v = random();
  const std::vector<double> weights = random();
  std::vector<double> grad_q, grad_k, grad_v;
  OracleBackward(p, q, k, v, weights, &grad_q, &grad_k, &grad_v);

  // Step 1e-5: central differences then err by O(h^2) ~ 1e-10 plus rounding
  // O(eps/h) ~ 1e-11, so 1e-7 leaves a wide margin yet catches any real bug.
  const double h = 1e-5;
  for (std::vector<double>* x : {&q, &k, &v}) {
    const std::vector<double>& analytic =
        x == &q ? grad_q : (x == &k ? grad_k : grad_v);
    for (size_t i = 0; i < x->size(); ++i) {
      const double saved = (*x)[i];
      (*x)[i] = saved + h;
      const double plus = Loss(p, q, k, v, weights);
      (*x)[i] = saved - h;
      const double minus = Loss(p, q, k, v, weights);
      (*x)[i] = saved;
      EXPECT_NEAR(analytic[i], (plus - minus) / (2 * h), 1e-7) << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    CausalAndNot, OracleGradientTest,
    ::testing::Combine(::testing::Bool(),
                       ::testing::Values(Variant::kFixed,
                                         Variant::kPartialSegments,
                                         Variant::kKeyPadding,
                                         Variant::kPacked)));

TEST(Oracle, UnselectedRowsAreZeroAndSelectedRowsAverageValues) {
  // Segment 4, rate 2, one group: positions 0 and 2 of each segment are
  // selected. With q = 0 every selected row is the mean of the selected v.
  OracleProblem p;
  p.seq_len = 8;
  p.num_heads = 1;
  p.head_dim = 1;
  p.segment_lengths = {4};
  p.dilation_rates = {2};
  p.softmax_scale = 1.0;
  const std::vector<double> q(8, 0.0), k(8, 1.0);
  const std::vector<double> v = {1, 100, 3, 100, 5, 100, 9, 100};
  std::vector<double> out, lse;
  OracleForward(p, q, k, v, &out, &lse);
  EXPECT_EQ(out, (std::vector<double>{2, 0, 2, 0, 7, 0, 7, 0}));
  EXPECT_DOUBLE_EQ(lse[0], std::log(2.0));
  EXPECT_TRUE(std::isinf(lse[1]) && lse[1] < 0);
}

TEST(Oracle, PartialLastSegmentAttendsWithinItself) {
  // Segment 4, rate 1, n = 6: positions 4 and 5 form a partial segment.
  OracleProblem p;
  p.seq_len = 6;
  p.num_heads = 1;
  p.head_dim = 1;
  p.segment_lengths = {4};
  p.dilation_rates = {1};
  p.softmax_scale = 1.0;
  const std::vector<double> q(6, 0.0), k(6, 1.0);
  const std::vector<double> v = {1, 2, 3, 6, 10, 20};
  std::vector<double> out, lse;
  OracleForward(p, q, k, v, &out, &lse);
  EXPECT_EQ(out, (std::vector<double>{3, 3, 3, 3, 15, 15}));
  EXPECT_DOUBLE_EQ(lse[4], std::log(2.0));
}

TEST(Oracle, PaddedKeysGetNoWeightAndPaddedRowsAreZero) {
  OracleProblem p;
  p.seq_len = 4;
  p.num_heads = 1;
  p.head_dim = 1;
  p.segment_lengths = {4};
  p.dilation_rates = {1};
  p.softmax_scale = 1.0;
  p.key_padding_mask = {0, 1, 0, 1};
  const std::vector<double> q(4, 0.0), k(4, 1.0);
  const std::vector<double> v = {2, 100, 4, 100};
  std::vector<double> out, lse;
  OracleForward(p, q, k, v, &out, &lse);
  EXPECT_EQ(out, (std::vector<double>{3, 0, 3, 0}));
  EXPECT_TRUE(std::isinf(lse[1]) && lse[1] < 0);
  EXPECT_DOUBLE_EQ(lse[2], std::log(2.0));
}

TEST(Oracle, PackedSequencesAreSegmentedFromTheirOwnStart) {
  // Sequences of 3 and 5 rows, segment 4: the second sequence's segments are
  // its rows 0-3 and 4 (rows 3-6 and 7 of the row axis).
  OracleProblem p;
  p.seq_lens = {3, 5};
  p.num_heads = 1;
  p.head_dim = 1;
  p.segment_lengths = {4};
  p.dilation_rates = {1};
  p.softmax_scale = 1.0;
  const std::vector<double> q(8, 0.0), k(8, 1.0);
  const std::vector<double> v = {1, 2, 3, 10, 20, 30, 40, 7};
  std::vector<double> out, lse;
  OracleForward(p, q, k, v, &out, &lse);
  EXPECT_EQ(out, (std::vector<double>{2, 2, 2, 25, 25, 25, 25, 7}));
  EXPECT_DOUBLE_EQ(lse[7], 0.0);
}

}  // namespace
}  // namespace testing
}  // namespace dilated
