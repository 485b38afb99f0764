// File: block_layout.h
//
// The block layouts of "block_sparse" (docs/BLOCK_SPARSE.md): the sequence is
// cut into num_blocks blocks of block_size tokens and a layout says which key
// blocks each query block may attend to, for every head ([num_blocks,
// num_blocks], shared by the heads) or per head ([heads, num_blocks,
// num_blocks]). The pattern builders make the layouts of the named patterns;
// a custom layout is given as it is.
//
//   dilated::BlockSparseConfig config;
//   config.pattern = dilated::BlockPattern::kLocalWindow;
//   config.block_size = 128;
//   config.window = 512;
//   absl::StatusOr<dilated::BlockLayout> layout =
//       dilated::BuildBlockLayout(config, /*seq_len=*/8192, /*num_heads=*/8);

#ifndef ATTENTION_BLOCK_LAYOUT_H_
#define ATTENTION_BLOCK_LAYOUT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dilated {

// Which query blocks may attend to which key blocks.
struct BlockLayout {
  // 1 (one layout for every head) or the number of heads.
  int64_t heads = 1;
  int64_t num_blocks = 0;
  // heads x num_blocks x num_blocks, row-major; nonzero: query block i of
  // head h may attend to key block j.
  std::vector<uint8_t> active;

  // Returns whether query block i of head h (h < heads) attends to key block j.
  bool IsActive(int64_t h, int64_t i, int64_t j) const {
    return active[(h * num_blocks + i) * num_blocks + j] != 0;
  }
  // Returns the number of active (head, query block, key block) triples.
  int64_t CountActive() const;
  // Returns OK when active has heads x num_blocks x num_blocks entries and
  // both counts are positive, else InvalidArgument naming the shape.
  absl::Status CheckShape() const;
};

enum class BlockPattern {
  // Key blocks [i - w', i + w' + 1) with w' = (window / block_size) / 2,
  // clipped to the sequence.
  kLocalWindow,
  // Blocks i and i +- r for the first three sparse_dilation_rates (in
  // blocks), clipped.
  kDilatedSparse,
  // The first ceil(global_tokens / block_size) blocks attend to every block
  // and every block attends to them, plus the local window.
  kGlobalLocal,
  // The union of hierarchical_levels (HierarchicalLevel).
  kHierarchical,
  // BlockSparseConfig::custom_layout.
  kCustom,
};

// Returns "local_window", "dilated_sparse", "global_local", "hierarchical" or
// "custom".
const char* BlockPatternName(BlockPattern pattern);

// Returns the pattern named `name`, or InvalidArgument naming it and the
// known names.
absl::StatusOr<BlockPattern> ParseBlockPattern(absl::string_view name);

// One level of the hierarchical pattern: query blocks 0, s, 2s, ... with
// s = max(1, stride / block_size) attend to the key blocks within
// half = max(1, window / block_size) / 2 of them ([p - half, p + half]),
// or to every key block when window < 0.
struct HierarchicalLevel {
  int64_t stride;
  int64_t window;
};

struct BlockSparseConfig {
  // Tokens per block; the sequence length must be a multiple of it.
  int64_t block_size = 128;
  BlockPattern pattern = BlockPattern::kDilatedSparse;
  // Local window in tokens (local_window, global_local); at least a block.
  int64_t window = 512;
  // Global tokens (global_local), rounded up to whole blocks; >= 0.
  int64_t global_tokens = 64;
  // Block distances of dilated_sparse; the first three are used; positive.
  std::vector<int64_t> sparse_dilation_rates = {1, 2, 4};
  // Levels of the hierarchical pattern.
  std::vector<HierarchicalLevel> hierarchical_levels = {
      {64, 256}, {256, 1024}, {1024, -1}};
  // The layout of the custom pattern; its num_blocks fixes the sequence
  // length (num_blocks * block_size) and its heads must be 1 or the heads
  // of the call.
  BlockLayout custom_layout;

  // Returns OK, or InvalidArgument naming the field and the value at fault.
  absl::Status Validate() const;
};

// Returns the layout of `config` for a sequence of seq_len tokens and
// num_heads heads, or InvalidArgument naming the value at fault (seq_len not
// a multiple of block_size, a custom layout of the wrong shape, ...).
absl::StatusOr<BlockLayout> BuildBlockLayout(const BlockSparseConfig& config,
                                             int64_t seq_len,
                                             int64_t num_heads);

}  // namespace dilated

#endif  // ATTENTION_BLOCK_LAYOUT_H_
