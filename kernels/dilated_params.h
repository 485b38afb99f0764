// File: dilated_params.h
//
// The contract between the attention front end and every kernel (CPU and
// CUDA): plain structs of pointers, 64-bit strides and sizes. Nothing here
// depends on Abseil, Eigen or the registry, so .cu files can include it.
//
// Tensors are [batch, seq, heads, head_dim] with arbitrary strides (counted in
// elements) and a contiguous last axis. Group i of the dilated pattern owns
// heads [head_begin, head_begin + num_heads) and, in segment m, the positions
// m * segment_length + offset + j * dilation_rate for j < positions (see
// ARCHITECTURE.md section 1).

#ifndef KERNELS_DILATED_PARAMS_H_
#define KERNELS_DILATED_PARAMS_H_

#include <cstdint>

namespace dilated {
namespace kernels {

enum class DataType : int32_t {
  kFloat32 = 0,
  kFloat16 = 1,
  kBFloat16 = 2,
};

// Upper bound on (segment, rate) pairs per call: the groups travel by value
// into CUDA kernels. LongNet's defaults use 5.
inline constexpr int kMaxGroups = 32;

// A [batch, seq, heads, head_dim] tensor. Strides are in elements.
struct TensorParams {
  void* data;
  int64_t stride_b;
  int64_t stride_n;
  int64_t stride_h;
};

// One (segment length, dilation rate) pair and the heads it owns.
struct GroupParams {
  int64_t head_begin;
  int64_t num_heads;
  int64_t segment_length;
  int64_t dilation_rate;
  int64_t offset;     // i mod dilation_rate
  int64_t positions;  // ceil((segment_length - offset) / dilation_rate), >= 0
};

struct ForwardParams {
  TensorParams q;
  TensorParams k;
  TensorParams v;
  TensorParams out;
  // Optional [batch, heads, seq] float32 log-sum-exp of the scaled scores of
  // every selected row (natural log); -inf for rows no group selects. May be
  // null. Strides in elements.
  float* lse;
  int64_t lse_stride_b;
  int64_t lse_stride_h;

  int64_t batch;
  int64_t seq_len;
  int64_t num_heads;
  int64_t head_dim;
  DataType dtype;
  float softmax_scale;
  float output_scale;  // 1 / number of groups
  bool is_causal;
  int32_t num_groups;
  GroupParams groups[kMaxGroups];
};

// Gradients of the loss with respect to q, k, v given its gradient with
// respect to out. `forward.out` and `forward.lse` hold what the forward pass
// wrote; lse is required.
struct BackwardParams {
  ForwardParams forward;
  TensorParams grad_out;
  TensorParams grad_q;
  TensorParams grad_k;
  TensorParams grad_v;
};

}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_DILATED_PARAMS_H_
