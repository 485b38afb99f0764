// File: standard_kernels.h
//
// The element-wise and row-wise kernels of the unfused CUDA path
// ("standard"): zero the output, gather a group's selected rows into dense
// [problems, positions, head_dim] buffers, softmax over float32 scores,
// softmax backward, and scatter float32 results back (times a scale) into a
// strided tensor. The matrix products in between are cuBLAS calls made by
// the caller. Any strides, any head_dim, all three dtypes.
//
// A "problem" of group i is one (batch, segment, head) attention: problem
// index x maps to head head_begin + x % num_heads, then segment and batch
// (docs/ARCHITECTURE.md section 1), or, for the other sequence layouts
// (partial segments, packed input, padding at the ends of sequences), to
// entry x / num_heads of a device table of StandardProblems. Dense buffers
// always hold g.positions rows per problem; rows past a table entry's
// length are zero, and their keys are masked. Chunks [first, first + count)
// of problems are processed at a time to bound the scratch memory.

#ifndef KERNELS_CUDA_STANDARD_KERNELS_H_
#define KERNELS_CUDA_STANDARD_KERNELS_H_

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/dilated_params.h"

namespace dilated {
namespace kernels {
namespace gpu {

// One problem of a group on the table path: its rows are row_base +
// first + j * dilation_rate (j < length) of the tensors' row axis, or
// row_base + rows[j] when `rows` is not null (padding between kept
// positions), in batch entry `batch` (which multiplies stride_b; 0-stride
// when packed).
struct StandardProblem {
  int64_t batch;
  int64_t row_base;
  int64_t first;
  int64_t length;
  const int32_t* rows;  // Device memory, `length` entries, or null.
};

// Returns the size in bytes of one element of `dtype`.
inline int64_t ElementBytes(DataType dtype) {
  return dtype == DataType::kFloat32 ? 4 : 2;
}

// Sets every element of the [batch, seq_len, heads, head_dim] tensor `t`
// ([seq_len, heads, head_dim] when packed; geometry and dtype from `p`) to
// zero.
cudaError_t StandardZero(const ForwardParams& p, const TensorParams& t,
                         cudaStream_t stream);

// Sets every entry of p.lse to -inf (no-op when p.lse is null).
cudaError_t StandardFillLse(const ForwardParams& p, cudaStream_t stream);

// Copies the selected rows of problems [first, first + count) of group
// `group` of `t` into `dense` ([count, positions, head_dim], p.dtype).
// `problems` is the group's device table, or null for the closed form.
cudaError_t StandardGather(const ForwardParams& p, const TensorParams& t,
                           int group, const StandardProblem* problems,
                           int64_t first, int64_t count, void* dense,
                           cudaStream_t stream);

// Writes scale * dense ([count, positions, head_dim] float32) into the
// selected rows of problems [first, first + count) of `t`.
cudaError_t StandardScatter(const ForwardParams& p, const float* dense,
                            float scale, int group,
                            const StandardProblem* problems, int64_t first,
                            int64_t count, const TensorParams& t,
                            cudaStream_t stream);

// Turns scaled scores ([count, positions, positions] float32, in place) into
// probabilities, masking keys after the query when p.is_causal and keys past
// a problem's length; also writes them rounded to p.dtype into `probs` and,
// when p.lse is not null, the log-sum-exp of every row of the problem (rows
// past its length get probabilities 0). With p.dropout enabled, `probs`
// receives the dropped probabilities (times the factors of
// kernels/dropout_rng.h) while `scores` and lse keep the undropped ones.
cudaError_t StandardSoftmax(const ForwardParams& p, int group,
                            const StandardProblem* problems, int64_t first,
                            int64_t count, float* scores, void* probs,
                            cudaStream_t stream);

// Writes dS = P o (dP - rowsum(P o dP)) rounded to p.dtype into `grad_scores`,
// from the undropped probabilities P and their gradient dP (both [count,
// positions, positions] float32). With p.dropout enabled, dP is the gradient
// of the dropped probabilities and is first multiplied by the factors:
// dS = P o (dP M - rowsum(P o dP M)). `problems` and `first` as for
// StandardSoftmax.
cudaError_t StandardSoftmaxBackward(const ForwardParams& p, int group,
                                    const StandardProblem* problems,
                                    int64_t first, int64_t count,
                                    const float* probs, const float* grad_probs,
                                    void* grad_scores, cudaStream_t stream);

}  // namespace gpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CUDA_STANDARD_KERNELS_H_
