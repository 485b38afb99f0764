// File: flash_attention.h
//
// The fused dilated attention on the CPU ("improved"): every group is a
// strided view of q, k, v and out (docs/ARCHITECTURE.md section 1), so a
// blockwise online-softmax attention (FlashAttention-2) that takes strides
// computes it in place, with no gather, no scatter and no temporaries beyond
// per-thread tiles. Compute is float32 for every storage type.
//
// Work is spread with OpenMP over (batch, segment, head, query block) in the
// forward pass and over (batch, segment, head) in the backward pass. Every
// output element is written by one thread, in an order that does not depend
// on the thread count, so results are bitwise identical for any number of
// threads.
//
//   const int threads = kernels::cpu::MaxThreads();
//   std::vector<float> workspace(
//       threads * kernels::cpu::FlashForwardWorkspacePerThread(params));
//   kernels::cpu::FlashForward(params, workspace.data(), threads);  // out, lse

#ifndef KERNELS_CPU_FLASH_ATTENTION_H_
#define KERNELS_CPU_FLASH_ATTENTION_H_

#include <cstdint>

#include "kernels/dilated_params.h"

namespace dilated {
namespace kernels {
namespace cpu {

// Returns the float32 workspace one thread of FlashForward needs: tiles
// only, about 570 KiB at head_dim 64 (up to 16 query blocks' q and output
// tiles, 512 KiB, plus one key tile).
int64_t FlashForwardWorkspacePerThread(const ForwardParams& params);

// Writes every element of params.out: (1/G) softmax attention for selected
// rows, zero for the rows no group selects. When params.lse is not null,
// writes the natural log-sum-exp of the scaled scores of every row (-inf for
// unselected rows). Causal tiles entirely above the diagonal are skipped.
// Runs `num_threads` OpenMP threads; the results do not depend on it.
// REQUIRES: params were produced by the attention front end (validated);
// `workspace` holds num_threads * FlashForwardWorkspacePerThread(params)
// floats (64-byte alignment keeps every tile on cache-line boundaries).
void FlashForward(const ForwardParams& params, float* workspace,
                  int num_threads);

// Returns the float32 workspace one thread of FlashBackward needs:
// 3 x positions x head_dim (rounded up to 8) for the longest group, plus
// tiles.
int64_t FlashBackwardWorkspacePerThread(const ForwardParams& params);

// Writes every element of grad_q, grad_k and grad_v, recomputing the attention
// probabilities from q, k and forward.lse (required) and using
// D_i = rowsum(grad_out_i * out_i) from forward.out.
// REQUIRES: as FlashForward, with FlashBackwardWorkspacePerThread(
// params.forward); forward.out and forward.lse hold what FlashForward (or an
// equivalent kernel) wrote for the same inputs.
void FlashBackward(const BackwardParams& params, float* workspace,
                   int num_threads);

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CPU_FLASH_ATTENTION_H_
