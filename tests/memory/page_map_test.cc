#include "memory/internal/page_map.h"

#include <cstdint>

#include "gtest/gtest.h"

namespace dilated {
namespace memory {
namespace memory_internal {
namespace {

int values[4];

TEST(PageMapTest, EmptyMapReturnsNull) {
  PageMap map;
  EXPECT_EQ(map.Get(0), nullptr);
  EXPECT_EQ(map.Get(0x7fff12345678), nullptr);
  EXPECT_EQ(map.Get(~uintptr_t{0}), nullptr);
}

TEST(PageMapTest, SetCoversExactlyOnePage) {
  PageMap map;
  const uintptr_t page = uintptr_t{0x7f0000} << 16;
  map.Set(page + 100, &values[0]);
  EXPECT_EQ(map.Get(page), &values[0]);
  EXPECT_EQ(map.Get(page + 0xffff), &values[0]);
  EXPECT_EQ(map.Get(page - 1), nullptr);
  EXPECT_EQ(map.Get(page + 0x10000), nullptr);
  map.Set(page, nullptr);
  EXPECT_EQ(map.Get(page + 100), nullptr);
}

TEST(PageMapTest, DistinguishesAddressesThatDifferOnlyInHighBits) {
  PageMap map;
  const uintptr_t low = uintptr_t{0x1234} << 16;
  const uintptr_t other_leaf = low | (uintptr_t{1} << 40);
  const uintptr_t high = low | (uintptr_t{0xabc} << 52);  // Above 2^48.
  map.Set(low, &values[0]);
  map.Set(high, &values[1]);
  EXPECT_EQ(map.Get(low), &values[0]);
  EXPECT_EQ(map.Get(high), &values[1]);
  EXPECT_EQ(map.Get(high + 0xffff), &values[1]);
  EXPECT_EQ(map.Get(other_leaf), nullptr);
  map.Set(other_leaf, &values[3]);
  EXPECT_EQ(map.Get(other_leaf), &values[3]);
  EXPECT_EQ(map.Get(low), &values[0]);
  map.Set(high, nullptr);
  EXPECT_EQ(map.Get(high), nullptr);
}

TEST(PageMapTest, SetRangeCoversEveryOverlappedPage) {
  PageMap map;
  const uintptr_t start = (uintptr_t{0x500} << 16) + 0x8000;  // Mid-page.
  map.SetRange(start, 3 * 0x10000, &values[2]);
  EXPECT_EQ(map.Get(start - 0x8000), &values[2]);  // First, partial page.
  EXPECT_EQ(map.Get(start + 3 * 0x10000 - 1), &values[2]);
  EXPECT_EQ(map.Get(start + 3 * 0x10000 + 0x8000), nullptr);
  EXPECT_EQ(map.Get(start - 0x8001), nullptr);
  map.SetRange(start, 3 * 0x10000, nullptr);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(map.Get(start + i * 0x10000 - 0x8000), nullptr);
  }
}

TEST(PageMapTest, ClearingAnUnmappedPageAddsNoNodes) {
  PageMap map;
  map.Set(uintptr_t{0x42} << 40, nullptr);
  EXPECT_EQ(map.Get(uintptr_t{0x42} << 40), nullptr);
}

}  // namespace
}  // namespace memory_internal
}  // namespace memory
}  // namespace dilated
