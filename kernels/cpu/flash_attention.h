// File: flash_attention.h
//
// The fused dilated attention on the CPU ("improved"): every group is a
// strided view of q, k, v and out (ARCHITECTURE.md section 1), so a blockwise
// online-softmax attention (FlashAttention-2) that takes strides computes it
// in place, with no gather, no scatter and no temporaries beyond per-thread
// tiles. Compute is float32 for every storage type.
//
// Work is spread with OpenMP over (batch, segment, head, query block) in the
// forward pass and over (batch, segment, head) in the backward pass. Every
// output element is written by one thread, in an order that does not depend
// on the thread count, so results are bitwise identical for any number of
// threads.
//
//   kernels::cpu::FlashForward(params);          // out, lse
//   kernels::cpu::FlashBackward(backward_params);  // grad_q, grad_k, grad_v

#ifndef KERNELS_CPU_FLASH_ATTENTION_H_
#define KERNELS_CPU_FLASH_ATTENTION_H_

#include "kernels/dilated_params.h"

namespace dilated {
namespace kernels {
namespace cpu {

// Writes every element of params.out: (1/G) softmax attention for selected
// rows, zero for the rows no group selects. When params.lse is not null,
// writes the natural log-sum-exp of the scaled scores of every row (-inf for
// unselected rows). Causal tiles entirely above the diagonal are skipped.
// Extra memory: tiles only, about 560 KiB per thread at head_dim 64 (up to 16
// query blocks' q and output tiles, 512 KiB, plus one key tile).
// REQUIRES: params were produced by the attention front end (validated).
void FlashForward(const ForwardParams& params);

// Writes every element of grad_q, grad_k and grad_v, recomputing the attention
// probabilities from q, k and forward.lse (required) and using
// D_i = rowsum(grad_out_i * out_i) from forward.out.
// Extra memory: 3 x positions x head_dim floats per thread, plus tiles.
// REQUIRES: as FlashForward; forward.out and forward.lse hold what
// FlashForward (or an equivalent kernel) wrote for the same inputs.
void FlashBackward(const BackwardParams& params);

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CPU_FLASH_ATTENTION_H_
