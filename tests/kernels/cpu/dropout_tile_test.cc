// The CPU kernels' factor tiles (eight or sixteen query lanes of Philox at
// once) against
// the scalar mask function of kernels/dropout_rng.h, element by element and
// bit for bit: strided and listed rows, both tile layouts, partial blocks of
// rows and keys.

#include "kernels/cpu/dropout_tile.h"

#include <cstdint>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/cpu_path.h"
#include "kernels/dropout_rng.h"

namespace dilated {
namespace kernels {
namespace cpu {
namespace {

struct Layouts {
  const char* name;
  DropoutTileLayout layout;
};

void ExpectTileMatchesMask(const ForwardParams& p, const Segment& s, int64_t i0,
                           int64_t rows, int64_t j0, int64_t keys) {
  for (const Layouts& l : {Layouts{"key-major", {64, 64, 1, 64}},
                           Layouts{"query-major", {64, 64, 64, 1}}}) {
    std::vector<float> tile(64 * 64, -1.0f);
    FillDropoutTile(p, s, i0, rows, j0, keys, l.layout, tile.data());
    for (int64_t i = 0; i < 64; ++i) {
      for (int64_t j = 0; j < 64; ++j) {
        const float expected =
            i < rows && j < keys
                ? DropoutFactor(p.dropout, s.problem->b, p.num_heads, s.head,
                                s.problem->Position(i0 + i),
                                s.problem->Position(j0 + j))
                : 0.0f;
        const float actual =
            tile[i * l.layout.query_stride + j * l.layout.key_stride];
        ASSERT_EQ(actual, expected)
            << l.name << " query row " << i0 + i << " key row " << j0 + j;
      }
    }
  }
}

// Sixteen lanes on AVX-512, eight on the AVX2 path: both are checked where
// the CPU has AVX-512.
class DropoutTile : public ::testing::TestWithParam<CpuPath> {
 protected:
  void SetUp() override {
    before_ = ActiveCpuPath();
    if (!SetCpuPath(GetParam())) GTEST_SKIP() << "the CPU lacks the path";
  }
  void TearDown() override { SetCpuPath(before_); }

 private:
  CpuPath before_ = CpuPath::kAvx2;
};

TEST_P(DropoutTile, MatchesTheScalarMaskFunction) {
  ForwardParams p{};
  p.num_heads = 5;
  p.dropout = MakeDropoutParams(0.4, 0xfedcba9876543210ULL, 1234567);
  GroupParams group{};
  // Rates 1, 2, 3 and 4: keys sharing a Philox block or not; odd first
  // positions, so that blocks start mid-tile.
  for (int64_t step : {1, 2, 3, 4}) {
    Problem problem{};
    problem.group = &group;
    problem.b = 3;
    problem.first = 7;
    problem.step = step;
    problem.length = 200;
    const Segment s{&problem, 2};
    ExpectTileMatchesMask(p, s, 0, 64, 0, 64);
    ExpectTileMatchesMask(p, s, 128, 37, 64, 29);  // partial rows and keys
    ExpectTileMatchesMask(p, s, 64, 3, 130, 64);
  }
  // Listed rows (padding between kept positions).
  const std::vector<int32_t> rows = {0, 1, 5, 6, 7, 8, 13, 21, 22, 23, 40};
  Problem listed{};
  listed.group = &group;
  listed.b = 0;
  listed.length = static_cast<int64_t>(rows.size());
  listed.rows = rows.data();
  ExpectTileMatchesMask(p, Segment{&listed, 4}, 0, listed.length, 0,
                        listed.length);
}

INSTANTIATE_TEST_SUITE_P(Paths, DropoutTile,
                         ::testing::Values(CpuPath::kAvx2, CpuPath::kAvx512),
                         [](const ::testing::TestParamInfo<CpuPath>& info) {
                           return std::string(CpuPathName(info.param));
                         });

}  // namespace
}  // namespace cpu
}  // namespace kernels
}  // namespace dilated
