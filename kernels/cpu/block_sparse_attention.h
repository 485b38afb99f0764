// File: block_sparse_attention.h
//
// The fused block-sparse attention on the CPU ("block_sparse",
// docs/BLOCK_SPARSE.md): q, k, v [batch, seq, heads, head_dim] are cut into
// blocks of block_size tokens; every query row attends, with ONE softmax, to
// all keys of the key blocks its query block lists (kernels/
// block_sparse_params.h), and only at or before itself when causal. Rows with
// no key get out = 0 and lse = -inf. Only active blocks are read; blocks a
// causal mask leaves out are skipped. Compute is float32 for every storage
// type; OpenMP over (batch, head, block), one writer per output element, so
// results do not depend on the thread count.
//
//   const int threads = kernels::cpu::MaxThreads();
//   std::vector<float> workspace(
//       threads * kernels::cpu::BlockSparseWorkspacePerThread(params, lists));
//   kernels::cpu::BlockSparseForward(params, lists, workspace.data(),
//                                    threads);

#ifndef KERNELS_CPU_BLOCK_SPARSE_ATTENTION_H_
#define KERNELS_CPU_BLOCK_SPARSE_ATTENTION_H_

#include <cstdint>

#include "kernels/block_sparse_params.h"
#include "kernels/dilated_params.h"

namespace dilated {
namespace kernels {
namespace cpu {

// Returns the float32 workspace one thread of BlockSparseForward needs:
// about 4 block_size^2 + 9 block_size x head_dim floats of tiles, plus k and
// v of one (batch, head) in float32 (2 x seq x head_dim; head_dim rounded up
// to 16), which keeps each key block converted once per thread and head.
int64_t BlockSparseWorkspacePerThread(const ForwardParams& params,
                                      const BlockLists& lists);

// Writes every element of params.out and, when params.lse is not null, the
// natural log-sum-exp of every row. Only params.q, k, v, out, lse, batch,
// seq_len, num_heads, head_dim, dtype, softmax_scale, is_causal and
// sequence.key_padding_mask are read (groups and output_scale are not).
// REQUIRES: fixed-length layout (no cu_seqlens); seq_len == lists.num_blocks *
// lists.block_size; lists.heads is 1 or num_heads; `workspace` holds
// num_threads * BlockSparseWorkspacePerThread floats, 64-byte aligned.
void BlockSparseForward(const ForwardParams& params, const BlockLists& lists,
                        float* workspace, int num_threads);

// Returns the float32 workspace BlockSparseBackward needs with
// `num_threads` threads: per thread the block tiles, D and lse of every row
// of one (batch, head), and its q, grad_out and dQ in float32 (3 x seq x
// head_dim, head_dim rounded up to 16),
// and on the AVX-512 and AMX paths q^T and grad_out^T of the head as well
// (5 x seq x head_dim in all).
int64_t BlockSparseBackwardWorkspace(const ForwardParams& params,
                                     const BlockLists& lists, int num_threads);

// Writes every element of grad_q, grad_k and grad_v, recomputing the
// probabilities from q, k and forward.lse (required), with
// D = rowsum(grad_out * forward.out). OpenMP over (batch, head): one thread
// writes every gradient row of a (batch, head), in a fixed order.
// REQUIRES: as BlockSparseForward, with BlockSparseBackwardWorkspace floats
// of `workspace`; forward.out and forward.lse hold what BlockSparseForward
// wrote for the same inputs.
void BlockSparseBackward(const BackwardParams& params, const BlockLists& lists,
                         float* workspace, int num_threads);

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CPU_BLOCK_SPARSE_ATTENTION_H_
