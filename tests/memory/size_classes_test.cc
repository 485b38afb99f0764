#include "memory/size_classes.h"

#include <cstddef>
#include <cstdint>
#include <random>

#include "gtest/gtest.h"

namespace dilated {
namespace memory {
namespace {

// The reference lookup: a linear search of the table.
int LinearSearch(size_t bytes, size_t alignment) {
  if (bytes == 0) return -1;
  for (int c = 0; c < kNumSizeClasses; ++c) {
    if (kSizeClasses[c].bytes >= bytes &&
        kSizeClasses[c].bytes % alignment == 0) {
      return c;
    }
  }
  return -1;
}

TEST(SizeClassesTest, LookupMatchesLinearSearchForEverySmallSize) {
  for (size_t bytes = 0; bytes <= kMaxSmallSize + 1; ++bytes) {
    ASSERT_EQ(SizeClassFor(bytes), LinearSearch(bytes, 1)) << bytes;
  }
}

TEST(SizeClassesTest, AlignedLookupMatchesLinearSearch) {
  std::mt19937_64 rng(1);
  for (size_t alignment = 1; alignment <= kPageSize; alignment *= 2) {
    for (int i = 0; i < 20000; ++i) {
      const size_t bytes = 1 + rng() % kMaxSmallSize;
      // Alignments up to 64 are met by every class (all multiples of 64).
      ASSERT_EQ(SizeClassFor(bytes, alignment),
                LinearSearch(bytes, alignment < 64 ? 1 : alignment))
          << bytes << " bytes, alignment " << alignment;
    }
  }
  EXPECT_EQ(SizeClassFor(100, 2 * kPageSize), -1);
}

TEST(SizeClassesTest, RoundingWastesAtMostAFifthAboveOneKiB) {
  for (size_t bytes = 1; bytes <= kMaxSmallSize; bytes += 7) {
    const size_t rounded = kSizeClasses[SizeClassFor(bytes)].bytes;
    ASSERT_GE(rounded, bytes);
    if (bytes > 1024) {
      ASSERT_LE(rounded - bytes, rounded / 5) << bytes;
    } else {
      ASSERT_LT(rounded - bytes, 64u) << bytes;
    }
  }
}

TEST(SizeClassesTest, DivisionMagicIsExactForEveryBlockOfEverySpan) {
  for (const SizeClassInfo& info : kSizeClasses) {
    const uint32_t magic = DivisionMagic(info.bytes);
    const uint64_t span = uint64_t{info.span_pages} * kPageSize;
    for (uint64_t offset = 0; offset < span; offset += info.bytes) {
      ASSERT_EQ((offset * magic) >> 32, offset / info.bytes)
          << info.bytes << " at " << offset;
    }
    // An offset that is not a block start never passes the exactness check.
    for (uint64_t offset = 1; offset < span; offset += 4093) {
      if (offset % info.bytes == 0) continue;
      const uint64_t index = (offset * magic) >> 32;
      ASSERT_NE(index * info.bytes, offset) << info.bytes << " at " << offset;
    }
  }
}

}  // namespace
}  // namespace memory
}  // namespace dilated
