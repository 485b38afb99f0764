// The vectorised row conversions of simd_convert.h against the scalar ones of
// row_io.h, bit for bit: rounding ties, subnormals, overflow, infinities,
// NaNs of every sign and payload, and rows whose length leaves a tail.

#include "kernels/cpu/simd_convert.h"

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/row_io.h"
#include "kernels/dilated_params.h"

namespace dilated {
namespace kernels {
namespace cpu {
namespace {

float FromBits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

uint32_t ToBits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  return bits;
}

// Edge cases of both 16-bit formats, then random bit patterns (every
// exponent, NaNs among them); 4,109 values, so that 16-wide loops leave a
// tail of 13.
std::vector<float> Values() {
  const uint32_t edges[] = {
      0x00000000, 0x80000000,              // zeros
      0x7f800000, 0xff800000,              // infinities
      0x7fc00000, 0xffc00000, 0x7f800001,  // NaNs: quiet, signalling,
      0xffc12345, 0x7fbfffff, 0xff812345,  // with payloads and signs
      0x00000001, 0x807fffff, 0x00800000,  // float32 subnormals, FLT_MIN
      0x7f7fffff, 0xff7fffff,              // FLT_MAX
      0x3f808000, 0x3f818000, 0x3f808001,  // bfloat16 ties and past them
      0x7f7f8000, 0x7f7f7fff,              // bfloat16 rounding to infinity
      0x477fe000, 0x477fefff, 0x477ff000,  // float16: 65504, below and at
      0xc77ff000, 0x47800000,              // the overflow tie, 65536
      0x3f801000, 0x3f803000, 0x3f801001,  // float16 ties and past them
      0x33800000, 0x33000000, 0x33400000,  // 2^-24, 2^-25 (tie), 3 * 2^-26
      0x33c00000, 0x387fffff, 0x38800000,  // 3 * 2^-25, around 2^-14
      0x387fe000, 0xb87ff000,              // the largest subnormal, ties
  };
  std::vector<float> values;
  for (uint32_t bits : edges) values.push_back(FromBits(bits));
  std::mt19937 rng(11);
  while (values.size() < 4109) values.push_back(FromBits(rng()));
  return values;
}

class SimdConvertTest : public ::testing::TestWithParam<DataType> {};

TEST_P(SimdConvertTest, StoreRowFastMatchesStoreRow) {
  const std::vector<float> values = Values();
  // Lengths around the 8- and 16-wide steps (tails of several sizes), then
  // all of the values.
  for (size_t count : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{15},
                       size_t{16}, size_t{17}, size_t{40}, values.size()}) {
    std::vector<uint16_t> fast(count + 1, 0xabcd), scalar(count + 1, 0xabcd);
    StoreRowFast(values.data(), GetParam(), count, fast.data());
    StoreRow(values.data(), GetParam(), count, scalar.data());
    for (size_t i = 0; i <= count; ++i) {
      ASSERT_EQ(fast[i], scalar[i])
          << "count " << count << ", element " << i << ", input bits 0x"
          << std::hex << (i < count ? ToBits(values[i]) : 0u);
    }
  }
}

TEST_P(SimdConvertTest, LoadRowFastMatchesLoadRow) {
  std::vector<uint16_t> stored(4109);
  std::mt19937 rng(13);
  for (uint16_t& x : stored) x = static_cast<uint16_t>(rng());
  std::vector<float> fast(stored.size()), scalar(stored.size());
  LoadRowFast(stored.data(), GetParam(), stored.size(), fast.data());
  LoadRow(stored.data(), GetParam(), stored.size(), scalar.data());
  for (size_t i = 0; i < stored.size(); ++i) {
    // F16C quiets signalling float16 NaNs (sign and payload kept); the
    // scalar widening keeps them signalling. Otherwise bit for bit.
    const uint32_t quiet_bit = scalar[i] != scalar[i] ? 0x00400000u : 0u;
    ASSERT_EQ(ToBits(fast[i]) | quiet_bit, ToBits(scalar[i]) | quiet_bit)
        << "element " << i << ", stored bits 0x" << std::hex << stored[i];
  }
}

INSTANTIATE_TEST_SUITE_P(SixteenBit, SimdConvertTest,
                         ::testing::Values(DataType::kFloat16,
                                           DataType::kBFloat16),
                         [](const ::testing::TestParamInfo<DataType>& info) {
                           return info.param == DataType::kFloat16 ? "float16"
                                                                   : "bfloat16";
                         });

}  // namespace
}  // namespace cpu
}  // namespace kernels
}  // namespace dilated
