// The tile walks of the fused CUDA kernels (kernels/tile_walk.h), checked on
// the host against the layouts they come from: for every thread block of
// every tile shape the kernels use, the tiles a walk visits are exactly the
// tiles of the active blocks the block's rows may see (causal or not), each
// once and in ascending order, and the contiguous walks are the dense
// kernels' ranges.

#include "kernels/tile_walk.h"

#include <cstdint>
#include <random>
#include <vector>

#include "attention/block_layout.h"
#include "attention/block_lists.h"
#include "gtest/gtest.h"
#include "kernels/block_sparse_params.h"

namespace dilated {
namespace {

using kernels::BlockLists;
using kernels::TileWalk;

std::vector<int> Visited(const TileWalk& walk) {
  std::vector<int> tiles;
  for (int t = 0; t < walk.count; ++t) tiles.push_back(walk.Tile(t));
  return tiles;
}

// A per-head layout with random blocks, a query block with no active block
// on head 0 and a key block that no query block attends to on head 1.
BlockLayout RandomLayout(int64_t heads, int64_t num_blocks, uint32_t seed) {
  BlockLayout layout;
  layout.heads = heads;
  layout.num_blocks = num_blocks;
  layout.active.assign(heads * num_blocks * num_blocks, 0);
  std::mt19937 random(seed);
  for (uint8_t& a : layout.active) a = random() % 3 == 0;
  for (int64_t j = 0; j < num_blocks; ++j)
    layout.active[1 * num_blocks + j] = 0;
  for (int64_t i = 0; i < num_blocks; ++i) {
    layout.active[(num_blocks + i) * num_blocks + 2] = 0;
  }
  return layout;
}

// The key tiles the brute force says query rows [first_row, first_row +
// rows) of head h see: tiles of active blocks, below the causal limit.
std::vector<int> ExpectedKeyTiles(const BlockLayout& layout, int64_t h,
                                  int64_t block_size, int tile, int first_row,
                                  int rows, bool causal) {
  const int64_t n = layout.num_blocks * block_size;
  const int limit = causal ? first_row + rows : static_cast<int>(n);
  std::vector<int> tiles;
  for (int kt = 0; kt * tile < n; ++kt) {
    const int64_t key_block = kt * tile / block_size;
    if (layout.IsActive(h, first_row / block_size, key_block) &&
        kt * tile < limit) {
      tiles.push_back(kt);
    }
  }
  return tiles;
}

// The query tiles the key rows from first_key of head h must visit: tiles of
// query blocks that attend to the key block, holding a row at or after
// first_key when causal.
std::vector<int> ExpectedQueryTiles(const BlockLayout& layout, int64_t h,
                                    int64_t block_size, int tile, int first_key,
                                    bool causal) {
  const int64_t n = layout.num_blocks * block_size;
  std::vector<int> tiles;
  for (int qt = 0; qt * tile < n; ++qt) {
    const int64_t query_block = qt * tile / block_size;
    if (layout.IsActive(h, query_block, first_key / block_size) &&
        (!causal || qt * tile + tile - 1 >= first_key)) {
      tiles.push_back(qt);
    }
  }
  return tiles;
}

TEST(TileWalkTest, SparseWalksVisitExactlyTheActiveTiles) {
  const int64_t heads = 3;
  for (int64_t block_size : {128, 256}) {
    const BlockLayout layout = RandomLayout(heads, 9, 7 + block_size);
    const BlockListStorage storage(layout, block_size);
    const BlockLists lists = storage.Lists();
    EXPECT_EQ(lists.entries, layout.CountActive());
    EXPECT_EQ(lists.entries, lists.row_begin[heads * layout.num_blocks]);
    const int n = static_cast<int>(layout.num_blocks * block_size);
    // The kernels' query-row and key-row tile sizes.
    for (int rows : {64, 128}) {
      for (int tile : {32, 64, 128}) {
        for (bool causal : {false, true}) {
          for (int64_t h = 0; h < heads; ++h) {
            for (int first = 0; first < n; first += rows) {
              SCOPED_TRACE(testing::Message()
                           << "block " << block_size << " rows " << rows
                           << " tile " << tile << " causal " << causal
                           << " head " << h << " first " << first);
              const int limit = causal ? first + rows : n;
              EXPECT_EQ(Visited(kernels::SparseKeyTiles(lists, h, tile, first,
                                                        limit)),
                        ExpectedKeyTiles(layout, h, block_size, tile, first,
                                         rows, causal));
              EXPECT_EQ(Visited(kernels::SparseQueryTiles(lists, h, tile, first,
                                                          causal)),
                        ExpectedQueryTiles(layout, h, block_size, tile, first,
                                           causal));
            }
          }
        }
      }
    }
  }
}

TEST(TileWalkTest, SharedLayoutServesEveryHead) {
  BlockLayout layout;
  layout.heads = 1;
  layout.num_blocks = 4;
  layout.active = {1, 0, 0, 0,  //
                   1, 1, 0, 0,  //
                   0, 1, 1, 0,  //
                   1, 0, 0, 1};
  const BlockListStorage storage(layout, 128);
  const BlockLists lists = storage.Lists();
  for (int64_t h : {0, 5}) {
    EXPECT_EQ(Visited(kernels::SparseKeyTiles(lists, h, 64, 384, 512)),
              (std::vector<int>{0, 1, 6, 7}));
    EXPECT_EQ(Visited(kernels::SparseQueryTiles(lists, h, 64, 0, false)),
              (std::vector<int>{0, 1, 2, 3, 6, 7}));
  }
}

TEST(TileWalkTest, EmptyWalkStartsAtTileZero) {
  BlockLayout layout;
  layout.heads = 1;
  layout.num_blocks = 2;
  layout.active = {0, 0, 1, 1};
  const BlockListStorage storage(layout, 128);
  const TileWalk walk =
      kernels::SparseKeyTiles(storage.Lists(), 0, 128, 0, 256);
  EXPECT_EQ(walk.count, 0);
  EXPECT_EQ(walk.Tile(0), 0);
}

TEST(TileWalkTest, ContiguousWalksAreRanges) {
  EXPECT_EQ(Visited(kernels::ContiguousTiles(0, 3)),
            (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(Visited(kernels::ContiguousTiles(2, 5)),
            (std::vector<int>{2, 3, 4}));
  EXPECT_EQ(kernels::ContiguousTiles(4, 4).count, 0);
}

}  // namespace
}  // namespace dilated
