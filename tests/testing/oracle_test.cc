// The oracle's analytic gradients against central finite differences of its
// own forward pass, in float64.

#include "tests/testing/oracle.h"

#include <cmath>
#include <random>
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

class OracleGradientTest : public ::testing::TestWithParam<bool> {};

TEST_P(OracleGradientTest, MatchesCentralDifferences) {
  OracleProblem p;
  p.batch = 2;
  p.seq_len = 12;
  p.num_heads = 3;
  p.head_dim = 4;
  p.segment_lengths = {4, 6, 12};
  p.dilation_rates = {1, 2, 3};
  p.is_causal = GetParam();
  p.softmax_scale = 0.7;
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

INSTANTIATE_TEST_SUITE_P(CausalAndNot, OracleGradientTest, ::testing::Bool());

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

}  // namespace
}  // namespace testing
}  // namespace dilated
