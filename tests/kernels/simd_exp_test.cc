// The AVX-512 exponentials of the CPU kernels (simd_exp_avx512.h) against
// std::exp2 in double precision, lane by lane, over their stated ranges and
// at the values they treat specially.

#include <immintrin.h>

#include <cmath>
#include <limits>
#include <vector>

#include "gtest/gtest.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl")
#include "kernels/cpu/simd_exp_avx512.h"
#pragma GCC pop_options

namespace dilated {
namespace kernels {
namespace cpu {
namespace {

enum class Exp { kExact, kCoarse };

// Returns Exp2x16 or Exp2x16Coarse of every element of x (padded to lanes).
__attribute__((target("avx512f,avx512dq,avx512bw,avx512vl"))) std::vector<float>
Evaluate(Exp which, std::vector<float> x) {
  x.resize((x.size() + 15) / 16 * 16, 0.0f);
  std::vector<float> y(x.size());
  for (size_t i = 0; i < x.size(); i += 16) {
    const __m512 v = _mm512_loadu_ps(x.data() + i);
    _mm512_storeu_ps(y.data() + i,
                     which == Exp::kExact ? Exp2x16(v) : Exp2x16Coarse(v));
  }
  return y;
}

// Returns `count` evenly spaced values in [lo, hi], and the integers and
// half-integers in it, where the range reduction changes sides.
std::vector<float> Sweep(double lo, double hi, int count) {
  std::vector<float> x;
  for (int i = 0; i < count; ++i) {
    x.push_back(static_cast<float>(lo + (hi - lo) * i / (count - 1)));
  }
  for (double k = std::ceil(lo); k <= hi; k += 0.5) {
    x.push_back(static_cast<float>(k));
  }
  return x;
}

// Returns the largest relative error of `which` over x.
double MaxRelativeError(Exp which, const std::vector<float>& x) {
  const std::vector<float> y = Evaluate(which, x);
  double worst = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double want = std::exp2(static_cast<double>(x[i]));
    worst = std::max(worst, std::fabs(y[i] - want) / want);
  }
  return worst;
}

class SimdExpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!__builtin_cpu_supports("avx512f") ||
        !__builtin_cpu_supports("avx512dq")) {
      GTEST_SKIP() << "the CPU has no AVX-512";
    }
  }
};

TEST_F(SimdExpTest, Exp2x16IsWithinItsBound) {
  EXPECT_LE(MaxRelativeError(Exp::kExact, Sweep(-126.0, 0.0, 200001)), 3e-7);
}

TEST_F(SimdExpTest, Exp2x16CoarseIsWithinItsBound) {
  EXPECT_LE(MaxRelativeError(Exp::kCoarse, Sweep(-126.0, 127.0, 200001)), 7e-6);
}

TEST_F(SimdExpTest, ZeroGivesExactlyOne) {
  EXPECT_EQ(Evaluate(Exp::kExact, {0.0f})[0], 1.0f);
  EXPECT_EQ(Evaluate(Exp::kCoarse, {0.0f})[0], 1.0f);
}

TEST_F(SimdExpTest, BelowTheRange) {
  const float minus_inf = -std::numeric_limits<float>::infinity();
  const std::vector<float> x = {-126.5f, -140.0f, -1e30f, minus_inf};
  const float smallest_normal = std::numeric_limits<float>::min();
  const std::vector<float> exact = Evaluate(Exp::kExact, x);
  const std::vector<float> coarse = Evaluate(Exp::kCoarse, x);
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(exact[i], 0.0f) << "x = " << x[i];
    EXPECT_EQ(coarse[i], smallest_normal) << "x = " << x[i];
  }
}

TEST_F(SimdExpTest, CoarseKeepsNaN) {
  EXPECT_TRUE(std::isnan(
      Evaluate(Exp::kCoarse, {std::numeric_limits<float>::quiet_NaN()})[0]));
}

}  // namespace
}  // namespace cpu
}  // namespace kernels
}  // namespace dilated
