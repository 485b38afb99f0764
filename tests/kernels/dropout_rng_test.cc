// Philox4x32-10 against Random123's known answers, and the dropout mask
// function built on it: its keep rate, its dependence on every coordinate
// and its threshold arithmetic.

#include "kernels/dropout_rng.h"

#include <cmath>
#include <cstdint>

#include "gtest/gtest.h"

namespace dilated {
namespace kernels {
namespace {

struct KnownAnswer {
  PhiloxBlock counter;
  uint32_t key0;
  uint32_t key1;
  PhiloxBlock expected;
};

// Random123 tests/kat_vectors, the three "philox4x32 10" lines: counter (4
// words), key (2 words), result (4 words).
TEST(Philox4x32_10, MatchesRandom123KnownAnswers) {
  const KnownAnswer answers[] = {
      {{{0, 0, 0, 0}},
       0,
       0,
       {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}}},
      {{{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}},
       0xffffffff,
       0xffffffff,
       {{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}}},
      {{{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}},
       0xa4093822,
       0x299f31d0,
       {{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}}},
  };
  for (const KnownAnswer& answer : answers) {
    const PhiloxBlock result =
        Philox4x32_10(answer.counter, answer.key0, answer.key1);
    for (int w = 0; w < 4; ++w) {
      EXPECT_EQ(result.word[w], answer.expected.word[w]) << "word " << w;
    }
  }
}

TEST(DropoutRng, OneBlockServesFourConsecutiveKeys) {
  const DropoutParams d = MakeDropoutParams(0.5, 0x0123456789abcdefULL, 77);
  const PhiloxBlock block = DropoutRandomBlock(d, 1, 8, 3, 40, 13);
  for (int64_t key = 12; key < 16; ++key) {
    EXPECT_EQ(DropoutRandomBits(d, 1, 8, 3, 40, key), block.word[key & 3]);
  }
  // The layout of the header's contract, spelled out.
  const uint64_t stream = 77 + 1 * 8 + 3;
  const PhiloxBlock direct = Philox4x32_10(
      {{3, 40, static_cast<uint32_t>(stream), 0}}, 0x89abcdefu, 0x01234567u);
  for (int w = 0; w < 4; ++w) EXPECT_EQ(block.word[w], direct.word[w]);
}

TEST(DropoutRng, ThresholdAndScale) {
  EXPECT_FALSE(MakeDropoutParams(0.0, 1, 2).enabled);
  const DropoutParams quarter = MakeDropoutParams(0.25, 1, 2);
  EXPECT_TRUE(quarter.enabled);
  EXPECT_EQ(quarter.drop_threshold, 0x40000000u);
  EXPECT_FLOAT_EQ(quarter.keep_scale, 4.0f / 3.0f);
  EXPECT_EQ(MakeDropoutParams(0.9999999999999, 1, 2).drop_threshold,
            0xFFFFFFFFu);
}

// Over n = 2^20 draws the number kept is Binomial(n, 1 - p); its standard
// deviation at p = 0.3 is sqrt(n p (1 - p)) ~ 469, and 6 of them bound a
// fluke at about 1e-9.
TEST(DropoutRng, KeepRateIsOneMinusP) {
  const double p = 0.3;
  const DropoutParams d = MakeDropoutParams(p, 2024, 0);
  int64_t kept = 0;
  int64_t n = 0;
  for (int64_t head = 0; head < 4; ++head) {
    for (int64_t i = 0; i < 256; ++i) {
      for (int64_t j = 0; j < 1024; ++j, ++n) {
        kept += DropoutFactor(d, 0, 4, head, i, j) != 0.0f;
      }
    }
  }
  const double sigma = std::sqrt(n * p * (1 - p));
  EXPECT_NEAR(static_cast<double>(kept), n * (1 - p), 6 * sigma);
}

// Each coordinate changes the draw: over 4096 pairs, two masks that agree
// by chance agree on about half the pairs at p = 0.5, never on all.
TEST(DropoutRng, EveryCoordinateMatters) {
  const DropoutParams base = MakeDropoutParams(0.5, 7, 100);
  DropoutParams other_seed = base;
  other_seed.seed = 8;
  DropoutParams other_offset = base;
  other_offset.offset = 100 + 2 * 4;  // past every (sequence, head) stream
  auto differs = [&](auto draw) {
    int64_t different = 0;
    for (int64_t i = 0; i < 64; ++i) {
      for (int64_t j = 0; j < 64; ++j) different += draw(i, j);
    }
    return different;
  };
  EXPECT_GT(differs([&](int64_t i, int64_t j) {
              return DropoutFactor(base, 1, 4, 2, i, j) !=
                     DropoutFactor(other_seed, 1, 4, 2, i, j);
            }),
            1000);
  EXPECT_GT(differs([&](int64_t i, int64_t j) {
              return DropoutFactor(base, 1, 4, 2, i, j) !=
                     DropoutFactor(other_offset, 1, 4, 2, i, j);
            }),
            1000);
  EXPECT_GT(differs([&](int64_t i, int64_t j) {
              return DropoutFactor(base, 0, 4, 2, i, j) !=
                     DropoutFactor(base, 1, 4, 2, i, j);
            }),
            1000);
  EXPECT_GT(differs([&](int64_t i, int64_t j) {
              return DropoutFactor(base, 1, 4, 2, i, j) !=
                     DropoutFactor(base, 1, 4, 3, i, j);
            }),
            1000);
  EXPECT_GT(differs([&](int64_t i, int64_t j) {
              return DropoutFactor(base, 1, 4, 2, i, j) !=
                     DropoutFactor(base, 1, 4, 2, j, i);
            }),
            1000);
}

}  // namespace
}  // namespace kernels
}  // namespace dilated
