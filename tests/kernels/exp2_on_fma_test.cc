#include "kernels/exp2_on_fma.h"

#include <cmath>
#include <limits>
#include <random>

#include "gtest/gtest.h"

namespace dilated {
namespace kernels {
namespace {

// The cubic's fitted bound (7.6e-5) plus the rounding of its float
// evaluation.
constexpr double kMaxRelativeError = 7.7e-5;

double RelativeError(float x) {
  const double exact = std::exp2(static_cast<double>(x));
  return std::abs(static_cast<double>(Exp2OnFma(x)) - exact) / exact;
}

TEST(Exp2OnFmaTest, WithinBoundOnAFineGrid) {
  double worst = 0.0;
  float worst_x = 0.0f;
  for (int i = -125 * 4096; i < 127 * 4096; ++i) {
    const float x = static_cast<float>(i) / 4096.0f;
    const double error = RelativeError(x);
    if (error > worst) {
      worst = error;
      worst_x = x;
    }
  }
  EXPECT_LE(worst, kMaxRelativeError) << "at x = " << worst_x;
  // The bound is the polynomial's: the fit is not loose by orders.
  EXPECT_GE(worst, 1e-5);
}

TEST(Exp2OnFmaTest, WithinBoundAtRandomPoints) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> softmax_range(-30.0f, 8.0f);
  for (int i = 0; i < 1000000; ++i) {
    const float x = softmax_range(rng);
    ASSERT_LE(RelativeError(x), kMaxRelativeError) << "at x = " << x;
  }
}

TEST(Exp2OnFmaTest, IntegersAndHalves) {
  for (int j = -125; j < 127; ++j) {
    for (const float f : {-0.5f, 0.0f, 0.5f}) {
      const float x = static_cast<float>(j) + f;
      ASSERT_LE(RelativeError(x), kMaxRelativeError) << "at x = " << x;
    }
  }
}

TEST(Exp2OnFmaTest, FarBelowAndMinusInfinityGiveAtMostTwoToMinus125) {
  const float tiny = std::ldexp(1.0f, -125);
  for (const float x : {-125.5f, -126.0f, -127.0f, -200.0f, -1e30f,
                        -std::numeric_limits<float>::infinity()}) {
    const float y = Exp2OnFma(x);
    EXPECT_GE(y, 0.0f) << "at x = " << x;
    EXPECT_LE(y, tiny) << "at x = " << x;
  }
}

}  // namespace
}  // namespace kernels
}  // namespace dilated
