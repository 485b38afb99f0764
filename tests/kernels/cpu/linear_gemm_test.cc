// kernels/cpu/linear_gemm.h against a float64 reference: every precision,
// shapes with partial tiles, row and column blocks, several depth blocks,
// strided operands, the epilogue, and independence from the thread count.

#include "kernels/cpu/linear_gemm.h"

#include <omp.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/cpu_path.h"

namespace dilated {
namespace kernels {
namespace cpu {
namespace {

struct Shape {
  int64_t rows;
  int64_t in;
  int64_t out;
};

// Partial tiles (14 x 32 on AVX-512, 6 x 16 on AVX2), more than one block
// of rows, depth blocks (512) with a remainder, more than one block of
// columns (1024 and 128), and the models' widths; fewer rows than
// LinearDirectRows() (linear_direct.h): every tile shape of the direct path
// (1 to 4 rows x 1 to 3 columns), depths below one 8-wide block and with a
// partial one, several blocks of rows (32 rows of 3072 products each), and
// the rows on both sides of the AVX2 switch; and more than 1024 rows.
const Shape kShapes[] = {
    {1, 1, 1},        {37, 45, 50},    {300, 96, 70},    {64, 768, 33},
    {129, 300, 1100}, {40, 3072, 96},  {5, 300, 70},     {31, 3072, 96},
    {2, 13, 9},       {16, 768, 3072}, {1030, 600, 150}, {1100, 64, 40},
    {155, 3072, 22},  {7, 5, 8},       {6, 13, 5},       {11, 45, 2},
    {10, 20, 4},      {159, 96, 10},   {160, 96, 10}};

struct Operands {
  Shape shape;
  int64_t ldx;
  int64_t ldy;
  std::vector<float> x;
  std::vector<float> w;
  std::vector<float> bias;
};

Operands MakeOperands(const Shape& shape, int64_t x_padding, int64_t y_padding,
                      uint32_t seed) {
  Operands ops;
  ops.shape = shape;
  ops.ldx = shape.in + x_padding;
  ops.ldy = shape.out + y_padding;
  std::mt19937 engine(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  // x's padding is NaN: a kernel that read it would spread NaN into y.
  ops.x.resize(shape.rows * ops.ldx);
  for (int64_t i = 0; i < shape.rows; ++i) {
    for (int64_t k = 0; k < ops.ldx; ++k) {
      ops.x[i * ops.ldx + k] = k < shape.in
                                   ? uniform(engine)
                                   : std::numeric_limits<float>::quiet_NaN();
    }
  }
  ops.w.resize(shape.out * shape.in);
  for (float& v : ops.w) v = uniform(engine);
  ops.bias.resize(shape.out);
  for (float& v : ops.bias) v = uniform(engine);
  return ops;
}

// y filled with NaN first: the kernel must never read its old values.
std::vector<float> Multiply(const Operands& ops, bool with_bias, bool relu) {
  std::vector<float> y(ops.shape.rows * ops.ldy,
                       std::numeric_limits<float>::quiet_NaN());
  LinearEpilogue epilogue;
  epilogue.bias = with_bias ? ops.bias.data() : nullptr;
  epilogue.relu = relu;
  EXPECT_TRUE(LinearGemmFloat32(ops.x.data(), ops.shape.rows, ops.shape.in,
                                ops.ldx, ops.w.data(), ops.shape.out, epilogue,
                                y.data(), ops.ldy));
  return y;
}

// Checks |y - exact| <= tolerance * (sum_k |x w| + |b|) for every element,
// the padding of y untouched (still NaN). Returns the largest error in units
// of that scale.
double CheckAgainstReference(const Operands& ops, const std::vector<float>& y,
                             bool with_bias, bool relu, double tolerance) {
  const Shape& s = ops.shape;
  double worst = 0.0;
  for (int64_t i = 0; i < s.rows; ++i) {
    for (int64_t j = 0; j < s.out; ++j) {
      double exact = with_bias ? ops.bias[j] : 0.0;
      double scale = with_bias ? std::abs(ops.bias[j]) : 0.0;
      for (int64_t k = 0; k < s.in; ++k) {
        const double product =
            static_cast<double>(ops.x[i * ops.ldx + k]) * ops.w[j * s.in + k];
        exact += product;
        scale += std::abs(product);
      }
      if (relu) exact = std::max(exact, 0.0);
      const double error = std::abs(y[i * ops.ldy + j] - exact) / scale;
      worst = std::max(worst, error);
      if (!(error <= tolerance)) {
        ADD_FAILURE() << "y[" << i << "][" << j << "] = " << y[i * ops.ldy + j]
                      << ", exact " << exact << ", error " << error
                      << " of the scale " << scale;
        return worst;
      }
    }
    for (int64_t j = s.out; j < ops.ldy; ++j) {
      EXPECT_TRUE(std::isnan(y[i * ops.ldy + j])) << "padding overwritten";
    }
  }
  return worst;
}

// Float32 accumulation of n terms: each partial sum rounds once (unit
// roundoff 2^-24), so the error is at most about n 2^-24 of the scale.
double Float32SumBound(int64_t terms) { return (terms + 2) * 0x1p-24; }

// A CPU path and the matmul precision it runs at.
struct PathCase {
  CpuPath path;
  MatmulPrecision precision;
};

class PrecisionTest : public ::testing::TestWithParam<PathCase> {
 protected:
  void SetUp() override {
    const PathCase& c = GetParam();
    if (c.path == CpuPath::kAvx512 && !CpuHasAvx512()) {
      GTEST_SKIP() << "no AVX-512 on this CPU";
    }
    if (c.path == CpuPath::kAmx && !CpuHasAmx()) {
      GTEST_SKIP() << "no AMX on this CPU";
    }
    path_before_ = ActiveCpuPath();
    ASSERT_TRUE(SetCpuPath(c.path));
    SetFloat32MatmulPrecision(c.precision);
  }
  void TearDown() override {
    SetFloat32MatmulPrecision(MatmulPrecision::kHighest);
    SetCpuPath(path_before_);
  }

  // The bound on one product's relative error from the operands' rounding.
  double ProductBound() const {
    switch (GetParam().precision) {
      case MatmulPrecision::kHighest:
        return 0.0;  // products of float32 values are exact in the FMA
      case MatmulPrecision::kHigh:
        // hi + lo is x to 2^-16 relative; the dropped lo*lo term is at most
        // 2^-16 of the product: 3 * 2^-16 with room for their products.
        return 4 * 0x1p-16;
      case MatmulPrecision::kMedium:
        // Each operand rounded to 8 significant bits: 2 * 2^-8 + 2^-16.
        return 2 * 0x1p-8 + 0x1p-15;
    }
    return 0.0;
  }

 private:
  CpuPath path_before_ = CpuPath::kAvx2;
};

TEST_P(PrecisionTest, MatchesFloat64Reference) {
  uint32_t seed = 1;
  for (const Shape& shape : kShapes) {
    SCOPED_TRACE(::testing::Message() << "rows " << shape.rows << " in "
                                      << shape.in << " out " << shape.out);
    const Operands ops = MakeOperands(shape, 0, 0, seed++);
    for (bool with_bias : {false, true}) {
      for (bool relu : {false, true}) {
        CheckAgainstReference(ops, Multiply(ops, with_bias, relu), with_bias,
                              relu, ProductBound() + Float32SumBound(shape.in));
      }
    }
  }
}

TEST_P(PrecisionTest, StridedOperandsLeavePaddingAlone) {
  for (const Shape& shape : {Shape{45, 100, 70}, Shape{6, 100, 70}}) {
    const Operands ops = MakeOperands(shape, 7, 5, 99);
    CheckAgainstReference(ops, Multiply(ops, true, false), true, false,
                          ProductBound() + Float32SumBound(100));
  }
}

// Tiled (1030 and 300 rows), direct (7 rows), and 70 rows of 3072 products
// (direct in three blocks of rows on AVX2, tiled elsewhere).
TEST_P(PrecisionTest, ResultDoesNotDependOnThreadCount) {
  for (const Shape& shape : {Shape{1030, 300, 200}, Shape{300, 300, 1100},
                             Shape{7, 300, 1100}, Shape{70, 3072, 50}}) {
    const Operands ops = MakeOperands(shape, 0, 0, 7);
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    const std::vector<float> one = Multiply(ops, true, true);
    omp_set_num_threads(3);
    const std::vector<float> three = Multiply(ops, true, true);
    omp_set_num_threads(threads);
    ASSERT_EQ(one.size(), three.size());
    for (size_t i = 0; i < one.size(); ++i) {
      ASSERT_EQ(one[i], three[i]) << "rows " << shape.rows << " element " << i;
    }
  }
}

// Every path the CPU has: AVX2 (forced on wider CPUs), AVX-512 at float32,
// AMX at the reduced precisions.
INSTANTIATE_TEST_SUITE_P(
    Paths, PrecisionTest,
    ::testing::Values(PathCase{CpuPath::kAvx2, MatmulPrecision::kHighest},
                      PathCase{CpuPath::kAvx512, MatmulPrecision::kHighest},
                      PathCase{CpuPath::kAmx, MatmulPrecision::kHigh},
                      PathCase{CpuPath::kAmx, MatmulPrecision::kMedium}),
    [](const ::testing::TestParamInfo<PathCase>& info) {
      return std::string(CpuPathName(info.param.path)) + "_" +
             MatmulPrecisionName(info.param.precision);
    });

// The reduced precisions must really run reduced: "medium" differs from the
// float32 products by more than float32 summation explains, and "high" is
// much closer to them than "medium".
TEST(LinearGemmTest, ReducedPrecisionsRoundTheirOperands) {
  if (!CpuHasAmx()) GTEST_SKIP() << "no AMX on this CPU";
  const Operands ops = MakeOperands({64, 512, 64}, 0, 0, 3);
  double worst[3];
  int i = 0;
  for (MatmulPrecision precision :
       {MatmulPrecision::kHighest, MatmulPrecision::kHigh,
        MatmulPrecision::kMedium}) {
    SetFloat32MatmulPrecision(precision);
    worst[i++] = CheckAgainstReference(ops, Multiply(ops, false, false), false,
                                       false, 1.0);
  }
  SetFloat32MatmulPrecision(MatmulPrecision::kHighest);
  EXPECT_LT(worst[0], Float32SumBound(512));
  EXPECT_GT(worst[2], 10 * Float32SumBound(512));
  EXPECT_LT(worst[1], worst[2] / 10);
}

// The AVX2 path computes at float32 whatever the precision allows: it has no
// reduced-precision products.
TEST(LinearGemmTest, Avx2PathIgnoresReducedPrecision) {
  const CpuPath before = ActiveCpuPath();
  ASSERT_TRUE(SetCpuPath(CpuPath::kAvx2));
  const Operands ops = MakeOperands({64, 300, 40}, 0, 0, 5);
  SetFloat32MatmulPrecision(MatmulPrecision::kHighest);
  const std::vector<float> highest = Multiply(ops, true, false);
  SetFloat32MatmulPrecision(MatmulPrecision::kMedium);
  const std::vector<float> medium = Multiply(ops, true, false);
  SetFloat32MatmulPrecision(MatmulPrecision::kHighest);
  SetCpuPath(before);
  EXPECT_EQ(highest, medium);
}

TEST(LinearGemmTest, PrecisionNames) {
  MatmulPrecision precision = MatmulPrecision::kHighest;
  EXPECT_TRUE(ParseMatmulPrecision("medium", &precision));
  EXPECT_EQ(precision, MatmulPrecision::kMedium);
  EXPECT_TRUE(ParseMatmulPrecision("high", &precision));
  EXPECT_EQ(precision, MatmulPrecision::kHigh);
  EXPECT_FALSE(ParseMatmulPrecision("tf32", &precision));
  EXPECT_EQ(precision, MatmulPrecision::kHigh);
  EXPECT_STREQ(MatmulPrecisionName(MatmulPrecision::kHighest), "highest");
}

}  // namespace
}  // namespace cpu
}  // namespace kernels
}  // namespace dilated
