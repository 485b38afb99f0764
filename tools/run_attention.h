// File: run_attention.h
//
// The work of the dilated_attention command: read q, k, v (and grad_out) from
// a safetensors file, run one registered implementation forward (and
// backward), write out (and grad_q, grad_k, grad_v) to another file.
//
//   dilated::tools::RunRequest request;
//   request.impl = "standard";
//   request.config.segment_lengths = {8, 16};
//   request.config.dilation_rates = {1, 2};
//   request.input = "in.safetensors";
//   request.output = "out.safetensors";
//   absl::Status status = dilated::tools::RunAttentionOnFiles(request);

#ifndef TOOLS_RUN_ATTENTION_H_
#define TOOLS_RUN_ATTENTION_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "attention/config.h"
#include "attention/tensor.h"

namespace dilated {
namespace tools {

struct RunRequest {
  // A name registered in the factory ("standard", "auto", ...).
  std::string impl;
  AttentionConfig config;
  bool is_causal = false;
  Device device = Device::Cpu();
  // Holds "q", "k", "v" ([batch, seq, heads, head_dim], one dtype of F32, F16
  // or BF16) and, for a backward run, "grad_out"; optionally "cu_seqlens"
  // (I32 or I64 [batch + 1]: packed sequences, q, k, v, grad_out are then
  // [total, heads, head_dim]) or "key_padding_mask" (BOOL or U8 [batch, seq],
  // nonzero = padding). For impl "block_sparse" with the custom pattern,
  // "block_layout" (BOOL or U8, [nb, nb] or [heads, nb, nb]) is the layout.
  // Other tensors are ignored.
  std::string input;
  // Receives "out" (the dtype and shape of q) and, for a backward run,
  // "grad_q", "grad_k" and "grad_v"; the run's settings go into its
  // metadata.
  //
  // With config.communicator over P > 1 ranks (a sequence-parallel
  // implementation, every rank running this with the same request), each
  // rank reads the whole input, keeps its shard of the sequence axis (rows
  // [p * n / P, (p + 1) * n / P); n must be a multiple of P), computes it,
  // and rank 0 gathers the shards and alone writes the output.
  std::string output;
  bool backward = false;
  // With config.dropout > 0 the run trains (ForwardOptions::training), so
  // dropout applies with this random stream, forward and backward alike.
  uint64_t dropout_seed = 0;
  uint64_t dropout_offset = 0;
};

// Runs `request`. Returns the first error met, naming the file, tensor, flag
// or field at fault: NotFound for an unknown implementation or a missing
// tensor, InvalidArgument for a bad configuration or bad shapes, DataLoss for
// a truncated file, FailedPrecondition for a device this build cannot use.
absl::Status RunAttentionOnFiles(const RunRequest& request);

}  // namespace tools
}  // namespace dilated

#endif  // TOOLS_RUN_ATTENTION_H_
