// The operator that shows which blocks "block_sparse" attends to:
//
//   block_layout(int seq_len, int num_heads, <the block_* arguments of
//                forward>) -> Tensor
//
// returns the layout a forward call with these arguments on a sequence of
// seq_len tokens and num_heads heads uses: a new CPU bool tensor [1, nb, nb]
// (shared by the heads) or [num_heads, nb, nb], True = query block i attends
// to key block j (attention/block_layout.h builds it). Errors raise
// RuntimeError "INVALID_ARGUMENT: <the library's message>".

#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>
#include <torch/headeronly/core/ScalarType.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "attention/block_layout.h"
#include "python/ops/block_sparse_arguments.h"
#include "python/ops/throw_status.h"

namespace dilated {
namespace torch_ops {
namespace {

using torch::stable::Tensor;

Tensor BlockLayoutOf(int64_t seq_len, int64_t num_heads, int64_t block_size,
                     std::string block_pattern, int64_t block_window,
                     int64_t global_tokens,
                     std::vector<int64_t> sparse_dilation_rates,
                     std::vector<int64_t> hierarchical_levels,
                     std::optional<Tensor> block_layout) {
  absl::StatusOr<BlockSparseConfig> config =
      BlockSparseConfigOf(BlockSparseArguments{
          block_size, std::move(block_pattern), block_window, global_tokens,
          std::move(sparse_dilation_rates), std::move(hierarchical_levels),
          std::move(block_layout)});
  ThrowIfError(config.status());
  ThrowIfError(config->Validate());
  absl::StatusOr<BlockLayout> layout =
      BuildBlockLayout(*config, seq_len, num_heads);
  ThrowIfError(layout.status());
  Tensor result = torch::stable::empty(
      {layout->heads, layout->num_blocks, layout->num_blocks},
      torch::headeronly::ScalarType::Bool);
  // BlockLayout::active holds 0 or 1 per entry: the bytes of bool.
  std::memcpy(result.mutable_data_ptr(), layout->active.data(),
              layout->active.size());
  return result;
}

}  // namespace
}  // namespace torch_ops
}  // namespace dilated

// One line per group of schema arguments.
// clang-format off
STABLE_TORCH_LIBRARY_FRAGMENT(dilated_attention, m) {
  m.def(
      "block_layout(int seq_len, int num_heads, "
      DA_BLOCK_SPARSE_SCHEMA_ARGUMENTS
      ") -> Tensor");
}
// clang-format on

STABLE_TORCH_LIBRARY_IMPL(dilated_attention, CompositeExplicitAutograd, m) {
  m.impl("block_layout", TORCH_BOX(&dilated::torch_ops::BlockLayoutOf));
}
