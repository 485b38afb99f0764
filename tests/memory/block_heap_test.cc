#include "memory/internal/block_heap.h"

#include <cstdint>
#include <map>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace dilated {
namespace memory {
namespace memory_internal {
namespace {

constexpr size_t kGranule = 64 << 10;
constexpr uintptr_t kBase = uintptr_t{1} << 40;  // Fake addresses: never read.

using Block = BlockHeap::Block;

TEST(BlockHeapTest, TakesBestFitNotFirstFit) {
  BlockHeap heap(kGranule);
  heap.AddSegment(kBase, 100 * kGranule);
  // Carve holes of 10, 3 and 5 granules separated by taken blocks.
  Block* a = heap.Take(10 * kGranule);
  Block* sep1 = heap.Take(kGranule);
  Block* b = heap.Take(3 * kGranule);
  Block* sep2 = heap.Take(kGranule);
  Block* c = heap.Take(5 * kGranule);
  Block* sep3 = heap.Take(kGranule);
  heap.Give(a, BlockHeap::kNoTag);
  heap.Give(b, BlockHeap::kNoTag);
  heap.Give(c, BlockHeap::kNoTag);
  ASSERT_EQ(heap.Validate(), "");
  // 4 granules: the 5-granule hole is the best fit (not the first, 10).
  Block* d = heap.Take(4 * kGranule);
  EXPECT_EQ(d->start, kBase + 15 * kGranule);
  EXPECT_EQ(d->size, 4 * kGranule);
  // 3 granules: exactly the 3-granule hole.
  Block* e = heap.Take(3 * kGranule);
  EXPECT_EQ(e->start, kBase + 11 * kGranule);
  ASSERT_EQ(heap.Validate(), "");
  for (Block* x : {d, e, sep1, sep2, sep3}) heap.Give(x, BlockHeap::kNoTag);
  EXPECT_EQ(heap.Validate(), "");
  EXPECT_EQ(heap.free_blocks(), 1u);  // Everything merged back.
}

TEST(BlockHeapTest, BestFitAcrossLogBins) {
  BlockHeap heap(kGranule);
  // Separate segments of 200, 130 and 129 granules (log bins above 64).
  heap.AddSegment(kBase, 200 * kGranule);
  heap.AddSegment(kBase + (uintptr_t{1} << 32), 130 * kGranule);
  heap.AddSegment(kBase + (uintptr_t{2} << 32), 129 * kGranule);
  Block* b = heap.Take(129 * kGranule);
  EXPECT_EQ(b->start, kBase + (uintptr_t{2} << 32));
  EXPECT_EQ(b->size, 129 * kGranule);
  Block* c = heap.Take(100 * kGranule);
  EXPECT_EQ(c->start, kBase + (uintptr_t{1} << 32));  // 130 < 200.
  EXPECT_EQ(heap.Take(201 * kGranule), nullptr);
  EXPECT_EQ(heap.Validate(), "");
}

TEST(BlockHeapTest, MergesOnlyCompatibleTags) {
  BlockHeap heap(kGranule);
  heap.AddSegment(kBase, 3 * kGranule);
  Block* a = heap.Take(kGranule);
  Block* b = heap.Take(kGranule);
  Block* c = heap.Take(kGranule);
  heap.Give(a, /*tag=*/1);
  heap.Give(c, /*tag=*/2);
  heap.Give(b, /*tag=*/1);  // Merges with a (tag 1), not with c (tag 2).
  EXPECT_EQ(heap.Validate(), "");
  EXPECT_EQ(heap.free_blocks(), 2u);
  Block* big = heap.Take(2 * kGranule);
  EXPECT_EQ(big->start, kBase);
  EXPECT_EQ(big->tag, 1u);  // The caller must order after stream 1.
  heap.Give(big, 1);
  heap.ClearTags();
  EXPECT_EQ(heap.Validate(), "");
  EXPECT_EQ(heap.free_blocks(), 1u);
}

TEST(BlockHeapTest, FreshMemoryMergesWithAnyTag) {
  BlockHeap heap(kGranule);
  heap.AddSegment(kBase, 2 * kGranule);
  Block* a = heap.Take(kGranule);  // The rest stays kNoTag.
  heap.Give(a, 7);
  EXPECT_EQ(heap.free_blocks(), 1u);
  Block* whole = heap.Take(2 * kGranule);
  EXPECT_EQ(whole->tag, 7u);
  heap.Give(whole, BlockHeap::kNoTag);
}

TEST(BlockHeapTest, CountsWholeFreeSegmentsAndTheirTags) {
  BlockHeap heap(kGranule);
  heap.AddSegment(kBase, 2 * kGranule);
  heap.AddSegment(kBase + (uintptr_t{1} << 32), 2 * kGranule);
  EXPECT_EQ(heap.CountFreeSegments(), 2u);
  EXPECT_FALSE(heap.AnyFreeSegmentTagged());
  Block* a = heap.Take(kGranule);  // Splits the first segment it finds.
  EXPECT_EQ(heap.CountFreeSegments(), 1u);
  heap.Give(a, /*tag=*/3);  // Merges with its fresh neighbour, tag 3.
  EXPECT_EQ(heap.CountFreeSegments(), 2u);
  EXPECT_TRUE(heap.AnyFreeSegmentTagged());
  heap.ClearTags();
  EXPECT_FALSE(heap.AnyFreeSegmentTagged());
}

TEST(BlockHeapTest, ReleasesOnlyWholeFreeSegments) {
  BlockHeap heap(kGranule);
  heap.AddSegment(kBase, 4 * kGranule);
  heap.AddSegment(kBase + (uintptr_t{1} << 32), 4 * kGranule);
  Block* a = heap.Take(4 * kGranule);
  std::vector<uintptr_t> released;
  EXPECT_EQ(heap.ReleaseFreeSegments([&](uintptr_t start, size_t size) {
    released.push_back(start);
    EXPECT_EQ(size, 4 * kGranule);
  }),
            4 * kGranule);
  ASSERT_EQ(released.size(), 1u);
  EXPECT_NE(released[0], a->start);
  heap.Give(a, BlockHeap::kNoTag);
  EXPECT_EQ(heap.ReleaseFreeSegments([](uintptr_t, size_t) {}), 4 * kGranule);
  EXPECT_EQ(heap.total_bytes(), 0u);
  EXPECT_EQ(heap.Validate(), "");
}

// Random takes and gives against a model of the taken ranges: taken blocks
// never overlap, lie inside a segment, have the requested size, and the heap
// keeps its invariants; once everything is given back and the tags cleared,
// each segment is one free block again.
TEST(BlockHeapTest, RandomOperationsKeepInvariants) {
  std::mt19937_64 rng(42);
  BlockHeap heap(kGranule);
  std::map<uintptr_t, size_t> segments;
  for (int s = 0; s < 4; ++s) {
    const uintptr_t start = kBase + (static_cast<uintptr_t>(s) << 34);
    const size_t size = (64 + rng() % 512) * kGranule;
    heap.AddSegment(start, size);
    segments[start] = size;
  }
  std::map<uintptr_t, Block*> taken;
  for (int step = 0; step < 20000; ++step) {
    if (taken.empty() || rng() % 3 != 0) {
      // Sizes from 1 to ~300 granules, skewed small.
      const size_t granules = 1 + (rng() % 8 == 0 ? rng() % 300 : rng() % 16);
      Block* b = heap.Take(granules * kGranule);
      if (b == nullptr) continue;
      ASSERT_EQ(b->size, granules * kGranule);
      auto seg = segments.upper_bound(b->start);
      ASSERT_NE(seg, segments.begin());
      --seg;
      ASSERT_LE(b->start + b->size, seg->first + seg->second);
      auto next = taken.lower_bound(b->start);
      if (next != taken.end()) {
        ASSERT_LE(b->start + b->size, next->first);
      }
      if (next != taken.begin()) {
        auto prev = std::prev(next);
        ASSERT_LE(prev->first + prev->second->size, b->start);
      }
      taken[b->start] = b;
    } else {
      auto it = taken.begin();
      std::advance(it, rng() % taken.size());
      const uintptr_t tag = rng() % 4 == 0 ? BlockHeap::kNoTag : rng() % 3;
      heap.Give(it->second, tag);
      taken.erase(it);
    }
    if (step % 97 == 0) {
      ASSERT_EQ(heap.Validate(), "") << "step " << step;
    }
    if (step % 1000 == 999) heap.ClearTags();
  }
  for (auto& entry : taken) heap.Give(entry.second, 1);
  heap.ClearTags();
  ASSERT_EQ(heap.Validate(), "");
  EXPECT_EQ(heap.free_blocks(), segments.size());
  size_t total = 0;
  for (auto& s : segments) total += s.second;
  EXPECT_EQ(heap.ReleaseFreeSegments([](uintptr_t, size_t) {}), total);
}

TEST(BlockHeapDeathTest, GivingTwiceDies) {
  EXPECT_DEATH(
      {
        BlockHeap heap(kGranule);
        heap.AddSegment(kBase, kGranule);
        Block* a = heap.Take(kGranule);
        heap.Give(a, 0);
        heap.Give(a, 0);
      },
      "given back twice");
}

}  // namespace
}  // namespace memory_internal
}  // namespace memory
}  // namespace dilated
