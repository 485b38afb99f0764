#include "attention/block_layout.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "factory/status_macros.h"

namespace dilated {
namespace {

constexpr BlockPattern kPatterns[] = {
    BlockPattern::kLocalWindow, BlockPattern::kDilatedSparse,
    BlockPattern::kGlobalLocal, BlockPattern::kHierarchical,
    BlockPattern::kCustom};

// A one-head layout with no active block.
BlockLayout EmptyLayout(int64_t num_blocks) {
  BlockLayout layout;
  layout.heads = 1;
  layout.num_blocks = num_blocks;
  layout.active.assign(num_blocks * num_blocks, 0);
  return layout;
}

void Activate(BlockLayout* layout, int64_t i, int64_t j) {
  if (i < 0 || j < 0 || i >= layout->num_blocks || j >= layout->num_blocks) {
    return;
  }
  layout->active[i * layout->num_blocks + j] = 1;
}

// Key blocks [i - radius, i + radius] of every query block i.
void ActivateWindow(BlockLayout* layout, int64_t radius) {
  for (int64_t i = 0; i < layout->num_blocks; ++i) {
    for (int64_t j = i - radius; j <= i + radius; ++j) Activate(layout, i, j);
  }
}

BlockLayout LocalWindow(const BlockSparseConfig& c, int64_t num_blocks) {
  BlockLayout layout = EmptyLayout(num_blocks);
  ActivateWindow(&layout, c.window / c.block_size / 2);
  return layout;
}

BlockLayout DilatedSparse(const BlockSparseConfig& c, int64_t num_blocks) {
  BlockLayout layout = EmptyLayout(num_blocks);
  const size_t rates = std::min<size_t>(3, c.sparse_dilation_rates.size());
  for (int64_t i = 0; i < num_blocks; ++i) {
    Activate(&layout, i, i);
    for (size_t r = 0; r < rates; ++r) {
      Activate(&layout, i, i - c.sparse_dilation_rates[r]);
      Activate(&layout, i, i + c.sparse_dilation_rates[r]);
    }
  }
  return layout;
}

BlockLayout GlobalLocal(const BlockSparseConfig& c, int64_t num_blocks) {
  BlockLayout layout = LocalWindow(c, num_blocks);
  const int64_t global =
      std::min(num_blocks, (c.global_tokens + c.block_size - 1) / c.block_size);
  for (int64_t g = 0; g < global; ++g) {
    for (int64_t i = 0; i < num_blocks; ++i) {
      Activate(&layout, i, g);
      Activate(&layout, g, i);
    }
  }
  return layout;
}

BlockLayout Hierarchical(const BlockSparseConfig& c, int64_t num_blocks) {
  BlockLayout layout = EmptyLayout(num_blocks);
  for (const HierarchicalLevel& level : c.hierarchical_levels) {
    const int64_t stride = std::max<int64_t>(1, level.stride / c.block_size);
    const int64_t half = std::max<int64_t>(1, level.window / c.block_size) / 2;
    for (int64_t p = 0; p < num_blocks; p += stride) {
      const int64_t begin = level.window < 0 ? 0 : p - half;
      const int64_t end = level.window < 0 ? num_blocks - 1 : p + half;
      for (int64_t t = begin; t <= end; ++t) Activate(&layout, p, t);
    }
  }
  return layout;
}

}  // namespace

int64_t BlockLayout::CountActive() const {
  return std::count_if(active.begin(), active.end(),
                       [](uint8_t a) { return a != 0; });
}

absl::Status BlockLayout::CheckShape() const {
  if (heads <= 0 || num_blocks <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("block layout must have positive heads and num_blocks, "
                     "got [",
                     heads, ", ", num_blocks, ", ", num_blocks, "]"));
  }
  if (static_cast<int64_t>(active.size()) != heads * num_blocks * num_blocks) {
    return absl::InvalidArgumentError(absl::StrCat(
        "block layout [", heads, ", ", num_blocks, ", ", num_blocks, "] needs ",
        heads * num_blocks * num_blocks, " entries, got ", active.size()));
  }
  return absl::OkStatus();
}

const char* BlockPatternName(BlockPattern pattern) {
  switch (pattern) {
    case BlockPattern::kLocalWindow:
      return "local_window";
    case BlockPattern::kDilatedSparse:
      return "dilated_sparse";
    case BlockPattern::kGlobalLocal:
      return "global_local";
    case BlockPattern::kHierarchical:
      return "hierarchical";
    case BlockPattern::kCustom:
      return "custom";
  }
  return "unknown";
}

absl::StatusOr<BlockPattern> ParseBlockPattern(absl::string_view name) {
  for (BlockPattern pattern : kPatterns) {
    if (name == BlockPatternName(pattern)) return pattern;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown block-sparse pattern '", name,
      "'; known: local_window, dilated_sparse, global_local, hierarchical, "
      "custom"));
}

absl::Status BlockSparseConfig::Validate() const {
  if (block_size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("block_size must be positive, got ", block_size));
  }
  const bool windowed = pattern == BlockPattern::kLocalWindow ||
                        pattern == BlockPattern::kGlobalLocal;
  if (windowed && window < block_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("window ", window, " is smaller than a block (block_size ",
                     block_size, ")"));
  }
  if (pattern == BlockPattern::kGlobalLocal && global_tokens < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "global_tokens must be non-negative, got ", global_tokens));
  }
  if (pattern == BlockPattern::kDilatedSparse) {
    if (sparse_dilation_rates.empty()) {
      return absl::InvalidArgumentError(
          "sparse_dilation_rates cannot be empty");
    }
    for (size_t r = 0; r < sparse_dilation_rates.size(); ++r) {
      if (sparse_dilation_rates[r] <= 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("sparse_dilation_rates[", r,
                         "] must be positive, got ", sparse_dilation_rates[r]));
      }
    }
  }
  if (pattern == BlockPattern::kHierarchical) {
    if (hierarchical_levels.empty()) {
      return absl::InvalidArgumentError("hierarchical_levels cannot be empty");
    }
    for (size_t l = 0; l < hierarchical_levels.size(); ++l) {
      if (hierarchical_levels[l].stride <= 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "hierarchical_levels[", l, "].stride must be positive, got ",
            hierarchical_levels[l].stride));
      }
    }
  }
  if (pattern == BlockPattern::kCustom) {
    if (absl::Status s = custom_layout.CheckShape(); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("custom_layout: ", s.message()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<BlockLayout> BuildBlockLayout(const BlockSparseConfig& config,
                                             int64_t seq_len,
                                             int64_t num_heads) {
  DA_RETURN_IF_ERROR(config.Validate());
  if (seq_len % config.block_size != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("sequence length ", seq_len,
                     " must be a multiple of block_size ", config.block_size));
  }
  const int64_t num_blocks = seq_len / config.block_size;
  switch (config.pattern) {
    case BlockPattern::kLocalWindow:
      return LocalWindow(config, num_blocks);
    case BlockPattern::kDilatedSparse:
      return DilatedSparse(config, num_blocks);
    case BlockPattern::kGlobalLocal:
      return GlobalLocal(config, num_blocks);
    case BlockPattern::kHierarchical:
      return Hierarchical(config, num_blocks);
    case BlockPattern::kCustom:
      break;
  }
  const BlockLayout& custom = config.custom_layout;
  if (custom.num_blocks != num_blocks) {
    return absl::InvalidArgumentError(absl::StrCat(
        "custom_layout has ", custom.num_blocks, " blocks per row but the ",
        "sequence of ", seq_len, " tokens has ", num_blocks,
        " blocks of block_size ", config.block_size));
  }
  if (custom.heads != 1 && custom.heads != num_heads) {
    return absl::InvalidArgumentError(
        absl::StrCat("custom_layout has ", custom.heads,
                     " heads; it must have 1 or num_heads = ", num_heads));
  }
  return custom;
}

}  // namespace dilated
