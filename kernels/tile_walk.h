// File: tile_walk.h
//
// The tiles one thread block of the fused CUDA kernels visits along its
// inner axis: the key tiles of a block of query rows (forward, dQ) or the
// query tiles of a block of key rows (dK, dV). Dense attention visits a
// contiguous range of tiles; block-sparse attention (block_sparse_params.h)
// visits the tiles of the active blocks of the thread block's layout block,
// in ascending order, and never an inactive one. The kernels' loops run
// over a TileWalk either way, so both share one body:
//
//   const TileWalk walk = SparseKeyTiles(lists, head, 128, j_begin, limit);
//   for (int t = 0; t < walk.count; ++t) Visit(walk.Tile(t) * 128);
//
// REQUIRES (sparse walks): the layout's block size is a multiple of the
// tile size, so a tile lies inside one block, and the visiting thread
// block's own rows lie inside one layout block.
// Host and device code (tests check the walks against the layouts).

#ifndef KERNELS_TILE_WALK_H_
#define KERNELS_TILE_WALK_H_

#include <cstdint>

#include "kernels/block_sparse_params.h"
#include "kernels/dilated_params.h"  // DA_HOST_DEVICE

namespace dilated {
namespace kernels {

struct TileWalk {
  // The active blocks, ascending, whose tiles are visited; null for a
  // contiguous range.
  const int32_t* blocks;
  int tiles_per_block;
  // Tiles left out before the first visited one: of the axis (contiguous)
  // or of the first listed block (sparse).
  int skip;
  int count;  // Tiles visited.

  // Returns the index on its axis of visited tile t (rows Tile(t) * tile
  // size onwards). Past the end of an empty sparse walk it returns 0, so
  // that a prologue may load "the first tile" unconditionally.
  DA_HOST_DEVICE int Tile(int t) const {
    const int u = t + skip;
    if (blocks == nullptr) return u;
    if (t >= count) return 0;
    return blocks[u / tiles_per_block] * tiles_per_block + u % tiles_per_block;
  }
};

// Tiles [first, end) of the axis.
DA_HOST_DEVICE inline TileWalk ContiguousTiles(int first, int end) {
  return TileWalk{nullptr, 1, first, end > first ? end - first : 0};
}

// The key tiles of `tile` keys that query rows from `first_row` visit:
// those of the active key blocks of its query block below `key_limit`
// (the end of the query rows under a causal mask, else the sequence length;
// the lists are ascending, so the limit cuts their tail).
DA_HOST_DEVICE inline TileWalk SparseKeyTiles(const BlockLists& lists,
                                              int64_t head, int tile,
                                              int first_row, int key_limit) {
  const int block_size = static_cast<int>(lists.block_size);
  const int64_t list =
      LayoutHead(lists, head) * lists.num_blocks + first_row / block_size;
  const int32_t begin = lists.row_begin[list];
  const int32_t end = lists.row_begin[list + 1];
  TileWalk walk{lists.row_blocks + begin, block_size / tile, 0, 0};
  for (int32_t e = begin; e < end; ++e) {
    const int start = lists.row_blocks[e] * block_size;
    if (start >= key_limit) break;
    const int tiles = (key_limit - start + tile - 1) / tile;
    walk.count += tiles < walk.tiles_per_block ? tiles : walk.tiles_per_block;
  }
  return walk;
}

// The query tiles of `tile` rows that key rows from `first_key` visit: those
// of the query blocks that attend to its key block; under a causal mask
// only blocks from the key block on, and in the key block itself only from
// the tile holding `first_key` on.
DA_HOST_DEVICE inline TileWalk SparseQueryTiles(const BlockLists& lists,
                                                int64_t head, int tile,
                                                int first_key, bool causal) {
  const int block_size = static_cast<int>(lists.block_size);
  const int key_block = first_key / block_size;
  const int64_t list = LayoutHead(lists, head) * lists.num_blocks + key_block;
  int32_t begin = lists.column_begin[list];
  const int32_t end = lists.column_begin[list + 1];
  int skip = 0;
  if (causal) {
    while (begin < end && lists.column_blocks[begin] < key_block) ++begin;
    if (begin < end && lists.column_blocks[begin] == key_block) {
      skip = (first_key - key_block * block_size) / tile;
    }
  }
  const int tiles_per_block = block_size / tile;
  return TileWalk{lists.column_blocks + begin, tiles_per_block, skip,
                  (end - begin) * tiles_per_block - skip};
}

}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_TILE_WALK_H_
