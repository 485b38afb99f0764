#include "python/ops/block_sparse_arguments.h"

#include <torch/csrc/stable/tensor.h>
#include <torch/headeronly/core/ScalarType.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "attention/block_layout.h"

namespace dilated {
namespace torch_ops {
namespace {

using torch::headeronly::ScalarType;

absl::StatusOr<BlockLayout> LayoutOf(const torch::stable::Tensor& tensor) {
  if (!tensor.is_cpu()) {
    return absl::InvalidArgumentError(
        "block_layout must be a CPU tensor (the layout is read on the host)");
  }
  const ScalarType type = tensor.scalar_type();
  if (type != ScalarType::Bool && type != ScalarType::Byte) {
    return absl::InvalidArgumentError(
        absl::StrCat("block_layout must be bool or uint8, got ",
                     torch::headeronly::toString(type)));
  }
  if (tensor.dim() != 2 && tensor.dim() != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("block_layout must be [nb, nb] or [heads, nb, nb], got ",
                     tensor.dim(), " dimensions"));
  }
  if (!tensor.is_contiguous()) {
    return absl::InvalidArgumentError("block_layout must be contiguous");
  }
  const int64_t nb = tensor.size(tensor.dim() - 1);
  if (tensor.size(tensor.dim() - 2) != nb) {
    return absl::InvalidArgumentError(absl::StrCat(
        "block_layout must be square in its last two dimensions, got ",
        tensor.size(tensor.dim() - 2), " x ", nb));
  }
  BlockLayout layout;
  layout.heads = tensor.dim() == 3 ? tensor.size(0) : 1;
  layout.num_blocks = nb;
  // bool and uint8 are both one byte per entry, nonzero = active; stored
  // as 0 and 1 so that equal layouts have equal cache keys.
  const auto* bytes = static_cast<const uint8_t*>(tensor.const_data_ptr());
  layout.active.reserve(tensor.numel());
  for (int64_t i = 0; i < tensor.numel(); ++i) {
    layout.active.push_back(bytes[i] != 0 ? 1 : 0);
  }
  return layout;
}

}  // namespace

absl::StatusOr<BlockSparseConfig> BlockSparseConfigOf(
    const BlockSparseArguments& arguments) {
  BlockSparseConfig config;
  absl::StatusOr<BlockPattern> pattern = ParseBlockPattern(arguments.pattern);
  if (!pattern.ok()) return pattern.status();
  config.pattern = *pattern;
  config.block_size = arguments.block_size;
  config.window = arguments.window;
  config.global_tokens = arguments.global_tokens;
  config.sparse_dilation_rates = arguments.sparse_dilation_rates;
  const std::vector<int64_t>& levels = arguments.hierarchical_levels;
  if (levels.size() % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "hierarchical_levels must hold (stride, window) pairs, got ",
        levels.size(), " values"));
  }
  if (!levels.empty()) {
    config.hierarchical_levels.clear();
    for (size_t i = 0; i < levels.size(); i += 2) {
      config.hierarchical_levels.push_back({levels[i], levels[i + 1]});
    }
  }
  const bool custom = config.pattern == BlockPattern::kCustom;
  if (custom != arguments.layout.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "block_layout is given exactly when block_pattern is 'custom'; got "
        "block_pattern '",
        arguments.pattern, "' and ", arguments.layout.has_value() ? "a" : "no",
        " block_layout"));
  }
  if (custom) {
    absl::StatusOr<BlockLayout> layout = LayoutOf(*arguments.layout);
    if (!layout.ok()) return layout.status();
    config.custom_layout = *std::move(layout);
  }
  return config;
}

std::string BlockSparseKey(const BlockSparseConfig& config) {
  std::string key =
      absl::StrCat(BlockPatternName(config.pattern), "/", config.block_size,
                   "/", config.window, "/", config.global_tokens, "/",
                   absl::StrJoin(config.sparse_dilation_rates, ","), "/");
  for (const HierarchicalLevel& level : config.hierarchical_levels) {
    absl::StrAppend(&key, level.stride, ":", level.window, ",");
  }
  if (config.pattern == BlockPattern::kCustom) {
    const BlockLayout& layout = config.custom_layout;
    absl::StrAppend(&key, "/", layout.heads, "x", layout.num_blocks, "/");
    key.append(layout.active.begin(), layout.active.end());
  }
  return key;
}

}  // namespace torch_ops
}  // namespace dilated
