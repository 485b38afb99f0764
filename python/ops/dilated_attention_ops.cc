// The PyTorch operators of the library, in the namespace "dilated_attention",
// built against LibTorch's stable ABI so that one binary serves every torch
// from 2.10 on:
//
//   forward(q, k, v, segment_lengths, dilation_rates, is_causal,
//           softmax_scale, impl, key_padding_mask, cu_seqlens,
//           communicator=0,
//           block_size=128, block_pattern='dilated_sparse', block_window=512,
//           global_tokens=64, sparse_dilation_rates=[1, 2, 4],
//           hierarchical_levels=[], block_layout=None,
//           dropout_p=0.0, seed=0, offset=0) -> (out, lse)
//   backward(grad_out, q, k, v, out, lse, <the same arguments>)
//       -> (grad_q, grad_k, grad_v)
//   implementations() -> the registered names
//
// q, k, v are [batch, seq, heads, head_dim] (or [total, heads, head_dim] with
// cu_seqlens) with any strides and a contiguous last axis; outputs are new
// contiguous tensors from torch's allocator, and so is the workspace of a
// call (python/ops/torch_allocator.h); lse is float32 [batch, heads, seq]
// ([heads, total] packed). The block_* arguments configure "block_sparse"
// (python/ops/block_sparse_arguments.h); other implementations ignore them.
// dropout_p > 0 trains with attention dropout (ForwardOptions::training) on
// the Philox stream of (seed, offset), read as unsigned 64-bit; backward must
// get the values its forward got, and regenerates the same mask. seed and
// offset are SymInts so that a seed drawn inside a torch.compile graph can
// reach the operator; the kernels get their concrete values.
// Errors raise RuntimeError with the library's message, prefixed by its
// status code ("INVALID_ARGUMENT: ...").
// The Python package (python/dilated_attention_torch) adds fake kernels and
// autograd.

#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>
#include <torch/headeronly/core/ScalarType.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "attention/attention.h"
#include "attention/options.h"
#include "attention/registry.h"
#include "attention/tensor.h"
#include "python/ops/attention_cache.h"
#include "python/ops/block_sparse_arguments.h"
#include "python/ops/current_stream.h"
#include "python/ops/tensor_conversion.h"
#include "python/ops/throw_status.h"
#include "python/ops/torch_allocator.h"

namespace dilated {
namespace torch_ops {
namespace {

using torch::stable::Tensor;

TensorView View(const Tensor& tensor, const char* name) {
  absl::StatusOr<TensorView> view = ViewOf(tensor, name);
  ThrowIfError(view.status());
  return *view;
}

// What forward and backward share: the Attention to use and the options.
struct Call {
  AttentionKey key;
  ForwardOptions options;
};

Call MakeCall(const Tensor& q, std::vector<int64_t> segment_lengths,
              std::vector<int64_t> dilation_rates, bool is_causal,
              std::optional<double> softmax_scale, std::string impl,
              const std::optional<Tensor>& key_padding_mask,
              const std::optional<Tensor>& cu_seqlens, int64_t communicator,
              const BlockSparseArguments& block_sparse, double dropout_p,
              int64_t seed, int64_t offset) {
  Call call;
  absl::StatusOr<BlockSparseConfig> block_config =
      BlockSparseConfigOf(block_sparse);
  ThrowIfError(block_config.status());
  call.key = AttentionKey{std::move(impl),
                          std::move(segment_lengths),
                          std::move(dilation_rates),
                          softmax_scale,
                          dropout_p,
                          communicator,
                          *std::move(block_config)};
  call.options.is_causal = is_causal;
  call.options.training = dropout_p != 0.0;
  call.options.dropout_seed = static_cast<uint64_t>(seed);
  call.options.dropout_offset = static_cast<uint64_t>(offset);
  if (key_padding_mask.has_value()) {
    call.options.key_padding_mask = View(*key_padding_mask, "key_padding_mask");
  }
  if (cu_seqlens.has_value()) {
    call.options.cu_seqlens = View(*cu_seqlens, "cu_seqlens");
  }
  if (q.is_cuda()) call.options.stream = CurrentStream(q.get_device_index());
  return call;
}

// The shape of lse for q: [batch, heads, seq], or [heads, total] when packed
// (3 dimensions). Shapes the library refuses are left for it to report.
std::vector<int64_t> LseShape(const Tensor& q) {
  if (q.dim() == 4) return {q.size(0), q.size(2), q.size(1)};
  if (q.dim() == 3) return {q.size(1), q.size(0)};
  return {0};
}

Tensor EmptyLike(const Tensor& like, const Tensor& shape_of) {
  std::vector<int64_t> shape(shape_of.sizes().begin(), shape_of.sizes().end());
  return torch::stable::new_empty(like, shape);
}

std::tuple<Tensor, Tensor> Forward(
    Tensor q, Tensor k, Tensor v, std::vector<int64_t> segment_lengths,
    std::vector<int64_t> dilation_rates, bool is_causal,
    std::optional<double> softmax_scale, std::string impl,
    std::optional<Tensor> key_padding_mask, std::optional<Tensor> cu_seqlens,
    int64_t communicator, int64_t block_size, std::string block_pattern,
    int64_t block_window, int64_t global_tokens,
    std::vector<int64_t> sparse_dilation_rates,
    std::vector<int64_t> hierarchical_levels,
    std::optional<Tensor> block_layout, double dropout_p, int64_t seed,
    int64_t offset) {
  const Call call =
      MakeCall(q, std::move(segment_lengths), std::move(dilation_rates),
               is_causal, softmax_scale, std::move(impl), key_padding_mask,
               cu_seqlens, communicator,
               BlockSparseArguments{
                   block_size, std::move(block_pattern), block_window,
                   global_tokens, std::move(sparse_dilation_rates),
                   std::move(hierarchical_levels), std::move(block_layout)},
               dropout_p, seed, offset);
  // q, k and v before the outputs, so that a refused input is reported by
  // its own name.
  const TensorView q_view = View(q, "q");
  const TensorView k_view = View(k, "k");
  const TensorView v_view = View(v, "v");
  Tensor out = EmptyLike(q, q);
  Tensor lse = torch::stable::new_empty(q, LseShape(q),
                                        torch::headeronly::ScalarType::Float);
  const TensorView lse_view = View(lse, "lse");
  TorchAllocator workspace(q);
  ForwardOptions options = call.options;
  options.workspace_allocator = &workspace;
  ThrowIfError(WithAttention(call.key, [&](Attention& attention) {
    return attention.Forward(q_view, k_view, v_view, View(out, "out"), options,
                             &lse_view);
  }));
  return {out, lse};
}

std::tuple<Tensor, Tensor, Tensor> Backward(
    Tensor grad_out, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse,
    std::vector<int64_t> segment_lengths, std::vector<int64_t> dilation_rates,
    bool is_causal, std::optional<double> softmax_scale, std::string impl,
    std::optional<Tensor> key_padding_mask, std::optional<Tensor> cu_seqlens,
    int64_t communicator, int64_t block_size, std::string block_pattern,
    int64_t block_window, int64_t global_tokens,
    std::vector<int64_t> sparse_dilation_rates,
    std::vector<int64_t> hierarchical_levels,
    std::optional<Tensor> block_layout, double dropout_p, int64_t seed,
    int64_t offset) {
  const Call call =
      MakeCall(q, std::move(segment_lengths), std::move(dilation_rates),
               is_causal, softmax_scale, std::move(impl), key_padding_mask,
               cu_seqlens, communicator,
               BlockSparseArguments{
                   block_size, std::move(block_pattern), block_window,
                   global_tokens, std::move(sparse_dilation_rates),
                   std::move(hierarchical_levels), std::move(block_layout)},
               dropout_p, seed, offset);
  const TensorView q_view = View(q, "q");
  const TensorView k_view = View(k, "k");
  const TensorView v_view = View(v, "v");
  const TensorView out_view = View(out, "out");
  const TensorView lse_view = View(lse, "lse");
  const TensorView grad_out_view = View(grad_out, "grad_out");
  Tensor grad_q = EmptyLike(q, q);
  Tensor grad_k = EmptyLike(q, k);
  Tensor grad_v = EmptyLike(q, v);
  TorchAllocator workspace(q);
  ForwardOptions options = call.options;
  options.workspace_allocator = &workspace;
  ThrowIfError(WithAttention(call.key, [&](Attention& attention) {
    return attention.Backward(q_view, k_view, v_view, out_view, lse_view,
                              grad_out_view, View(grad_q, "grad_q"),
                              View(grad_k, "grad_k"), View(grad_v, "grad_v"),
                              options);
  }));
  return {grad_q, grad_k, grad_v};
}

#ifndef DA_TORCH_OPS_CUDA
std::vector<std::string> Implementations() {
  return RegisteredAttentionNames();
}
#endif

}  // namespace
}  // namespace torch_ops
}  // namespace dilated

// The CPU library defines the schemas; the CUDA library, loaded after it,
// adds CUDA kernels (DA_TORCH_DISPATCH_KEY names the key each one serves).
#ifndef DA_TORCH_OPS_CUDA
// One line per group of schema arguments.
// clang-format off
STABLE_TORCH_LIBRARY(dilated_attention, m) {
  m.def(
      "forward(Tensor q, Tensor k, Tensor v, int[] segment_lengths, "
      "int[] dilation_rates, bool is_causal, float? softmax_scale, str impl, "
      "Tensor? key_padding_mask, Tensor? cu_seqlens, int communicator=0, "
      DA_BLOCK_SPARSE_SCHEMA_ARGUMENTS ", "
      "float dropout_p=0.0, SymInt seed=0, SymInt offset=0"
      ") -> (Tensor, Tensor)");
  m.def(
      "backward(Tensor grad_out, Tensor q, Tensor k, Tensor v, Tensor out, "
      "Tensor lse, int[] segment_lengths, int[] dilation_rates, "
      "bool is_causal, float? softmax_scale, str impl, "
      "Tensor? key_padding_mask, Tensor? cu_seqlens, int communicator=0, "
      DA_BLOCK_SPARSE_SCHEMA_ARGUMENTS ", "
      "float dropout_p=0.0, SymInt seed=0, SymInt offset=0"
      ") -> (Tensor, Tensor, Tensor)");
  m.def("implementations() -> str[]");
}
// clang-format on

STABLE_TORCH_LIBRARY_IMPL(dilated_attention, CompositeExplicitAutograd, m) {
  m.impl("implementations", TORCH_BOX(&dilated::torch_ops::Implementations));
}
#endif  // DA_TORCH_OPS_CUDA

STABLE_TORCH_LIBRARY_IMPL(dilated_attention, DA_TORCH_DISPATCH_KEY, m) {
  m.impl("forward", TORCH_BOX(&dilated::torch_ops::Forward));
  m.impl("backward", TORCH_BOX(&dilated::torch_ops::Backward));
}
