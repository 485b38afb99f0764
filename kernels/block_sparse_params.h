// File: block_sparse_params.h
//
// The active blocks of a block-sparse attention call as compact lists, for
// the block-sparse kernels (CPU and CUDA): for every (layout head, query
// block) the key blocks it attends to, ascending, and for every (layout head,
// key block) the query blocks that attend to it (what the backward pass
// accumulates dK and dV over). Plain pointers and sizes, so .cu files can
// include it. The lists are built on the host from a block layout
// (attention/block_sparse.cc) and hold every active block, causal or not;
// kernels skip the blocks a causal mask leaves out.

#ifndef KERNELS_BLOCK_SPARSE_PARAMS_H_
#define KERNELS_BLOCK_SPARSE_PARAMS_H_

#include <cstdint>

#include "kernels/dilated_params.h"  // DA_HOST_DEVICE

namespace dilated {
namespace kernels {

struct BlockLists {
  int64_t block_size;
  int64_t num_blocks;
  // 1 (every head of the call uses list 0) or the call's heads.
  int64_t heads;
  // Query block i of layout head h attends to the key blocks
  // row_blocks[row_begin[h * num_blocks + i] .. row_begin[... + 1]).
  const int32_t* row_begin;  // heads * num_blocks + 1 entries.
  const int32_t* row_blocks;
  // Key block j of layout head h is attended to by the query blocks
  // column_blocks[column_begin[h * num_blocks + j] .. ... + 1]).
  const int32_t* column_begin;  // heads * num_blocks + 1 entries.
  const int32_t* column_blocks;
  // The length of row_blocks (and of column_blocks): the active (layout
  // head, query block, key block) triples, known on the host wherever the
  // lists are. A launch chooses its kernel by it (the rows' mean length),
  // and the device copy is sized by it.
  int64_t entries = 0;
};

// Returns the list index of call head `head` (0 when the layout is shared).
DA_HOST_DEVICE inline int64_t LayoutHead(const BlockLists& lists,
                                         int64_t head) {
  return lists.heads == 1 ? 0 : head;
}

}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_BLOCK_SPARSE_PARAMS_H_
