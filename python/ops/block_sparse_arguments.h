// The block-sparse arguments of the operators (the trailing block_size ..
// block_layout of forward and backward) as the library's BlockSparseConfig,
// and the string that tells configurations apart in the attention cache.

#ifndef DILATED_PYTHON_OPS_BLOCK_SPARSE_ARGUMENTS_H_
#define DILATED_PYTHON_OPS_BLOCK_SPARSE_ARGUMENTS_H_

#include <torch/csrc/stable/tensor.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "attention/block_layout.h"

// The operators' schema text of the arguments, with the library's defaults
// (forward, backward and block_layout take them last).
#define DA_BLOCK_SPARSE_SCHEMA_ARGUMENTS                                  \
  "int block_size=128, str block_pattern='dilated_sparse', "              \
  "int block_window=512, int global_tokens=64, "                          \
  "int[] sparse_dilation_rates=[1, 2, 4], int[] hierarchical_levels=[], " \
  "Tensor? block_layout=None"

namespace dilated {
namespace torch_ops {

struct BlockSparseArguments {
  int64_t block_size = 128;
  // A BlockPatternName ("local_window", ..., "custom").
  std::string pattern = "dilated_sparse";
  int64_t window = 512;
  int64_t global_tokens = 64;
  std::vector<int64_t> sparse_dilation_rates = {1, 2, 4};
  // (stride, window) pairs, flattened; empty: the library's default levels.
  std::vector<int64_t> hierarchical_levels;
  // bool or uint8 [nb, nb] or [heads, nb, nb] on the CPU, contiguous; given
  // exactly when pattern is "custom".
  std::optional<torch::stable::Tensor> layout;
};

// Returns the config of `arguments`, or InvalidArgument naming the argument
// and its value (an unknown pattern, a layout without "custom" or on the
// wrong device, an odd number of hierarchical_levels entries, ...). The
// config's own rules (BlockSparseConfig::Validate) are left to
// CreateAttention.
absl::StatusOr<BlockSparseConfig> BlockSparseConfigOf(
    const BlockSparseArguments& arguments);

// A string equal for two configs exactly when they lay out the same blocks
// (a custom layout contributes its bytes).
std::string BlockSparseKey(const BlockSparseConfig& config);

}  // namespace torch_ops
}  // namespace dilated

#endif  // DILATED_PYTHON_OPS_BLOCK_SPARSE_ARGUMENTS_H_
