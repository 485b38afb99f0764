// File: dilated_params.h
//
// The contract between the attention front end and every kernel (CPU and
// CUDA): plain structs of pointers, 64-bit strides and sizes. Nothing here
// depends on Abseil, Eigen or the registry, so .cu files can include it.
//
// Tensors are [batch, seq, heads, head_dim] (fixed-length layout) or
// [total, heads, head_dim] (packed variable-length layout, SequenceParams)
// with arbitrary strides (counted in elements) and a contiguous last axis.
// Group i of the dilated pattern owns heads [head_begin, head_begin +
// num_heads) and, in segment m of a sequence of length n, which covers
// positions [m * segment_length, min((m + 1) * segment_length, n)), the
// positions m * segment_length + offset + j * dilation_rate inside it (see
// docs/ARCHITECTURE.md section 1). Segments need not divide n: the last one
// of a sequence may be partial.

#ifndef KERNELS_DILATED_PARAMS_H_
#define KERNELS_DILATED_PARAMS_H_

#include <cstdint>

// Helpers below are callable from host and device code.
#ifdef __CUDACC__
#define DA_HOST_DEVICE __host__ __device__
#else
#define DA_HOST_DEVICE
#endif

namespace dilated {
namespace kernels {

enum class DataType : int32_t {
  kFloat32 = 0,
  kFloat16 = 1,
  kBFloat16 = 2,
  // Index and mask tensors (cu_seqlens, key_padding_mask); never the dtype of
  // q, k, v or out.
  kInt32 = 3,
  kBool = 4,
};

// Upper bound on (segment, rate) pairs per call: the groups travel by value
// into CUDA kernels. LongNet's defaults use 5.
inline constexpr int kMaxGroups = 32;

// A [batch, seq, heads, head_dim] tensor. Strides are in elements. In the
// packed layout stride_b is 0 and rows are addressed by stride_n alone.
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
  int64_t offset;  // i mod dilation_rate
  // Rows of a full segment: ceil((segment_length - offset) / dilation_rate),
  // >= 0. A partial segment has fewer (SegmentPositions).
  int64_t positions;
};

// Returns the positions group `g` selects in a segment of `extent` positions
// (a full segment has extent == segment_length).
DA_HOST_DEVICE inline int64_t SegmentPositions(const GroupParams& g,
                                               int64_t extent) {
  return g.offset >= extent
             ? 0
             : (extent - g.offset + g.dilation_rate - 1) / g.dilation_rate;
}

// Attention dropout (FlashAttention's semantics): each probability P[i, j]
// of a selected row is kept with probability 1 - p and then scaled by
// keep_scale = 1 / (1 - p), or dropped (set to 0), before it multiplies v;
// the row's log-sum-exp is that of the undropped softmax. Whether (query,
// key) is kept is a pure function of (seed, offset, sequence, head, query
// position, key position) given in kernels/dropout_rng.h, so forward and
// backward, every kernel and every device draw the same mask.
struct DropoutParams {
  // False: no dropout (every other field is ignored).
  bool enabled;
  // A probability is dropped when its 32 random bits are below this value:
  // floor(p * 2^32), computed once on the host so that every kernel compares
  // the same integers.
  uint32_t drop_threshold;
  // 1 / (1 - p), rounded to float32 once on the host.
  float keep_scale;
  uint64_t seed;
  uint64_t offset;
};

// How the rows of the tensors form sequences.
struct SequenceParams {
  // Packed variable-length batch when not null: `batch` sequences, sequence
  // i at rows cu_seqlens[i] .. cu_seqlens[i + 1] - 1 of the row axis (every
  // TensorParams::stride_b and lse_stride_b is 0). Each sequence is
  // segmented from its own position 0. In the memory of the tensors' device.
  const int32_t* cu_seqlens;
  // The longest sequence, or an upper bound on it (seq_len for fixed-length
  // input).
  int64_t max_seq_len;
  // Optional [batch, seq] key padding mask (fixed-length layout only), in the
  // tensors' device memory: nonzero marks padding. A padded key gets no
  // weight; a padded query row gets out = 0, lse = -inf and zero gradients.
  const uint8_t* key_padding_mask;
  int64_t mask_stride_b;
};

struct ForwardParams {
  TensorParams q;
  TensorParams k;
  TensorParams v;
  TensorParams out;
  // Optional [batch, heads, seq] ([heads, total] when packed) float32
  // log-sum-exp of the scaled scores of every selected row (natural log);
  // -inf for rows no group selects and padded rows. May be null. Strides in
  // elements.
  float* lse;
  int64_t lse_stride_b;
  int64_t lse_stride_h;

  // Fixed-length layout: `batch` sequences of seq_len rows. Packed layout:
  // `batch` sequences (sequence.cu_seqlens) in seq_len = total rows.
  int64_t batch;
  int64_t seq_len;
  SequenceParams sequence;
  // Key geometry: rows of k and v per sequence, and the position of key row 0
  // relative to query row 0, which segment selection and the causal mask of
  // the keys use (a query block attending a key block that lives elsewhere).
  // The front end produces key_seq_len == seq_len and key_position_offset ==
  // 0; a backend that cannot run other geometries says so
  // (attention/backend_registry.h).
  int64_t key_seq_len;
  int64_t key_position_offset;
  int64_t num_heads;
  int64_t head_dim;
  DataType dtype;
  float softmax_scale;
  float output_scale;  // 1 / number of groups
  bool is_causal;
  // Zero-initialised (disabled) unless the call trains with dropout.
  DropoutParams dropout;
  int32_t num_groups;
  GroupParams groups[kMaxGroups];
};

// Returns whether the tensors use the packed variable-length layout.
DA_HOST_DEVICE inline bool IsPacked(const ForwardParams& p) {
  return p.sequence.cu_seqlens != nullptr;
}

// Returns the extent of the tensors' batch axis: 1 when packed (the rows of
// every sequence share one axis), else batch.
DA_HOST_DEVICE inline int64_t StorageBatch(const ForwardParams& p) {
  return IsPacked(p) ? 1 : p.batch;
}

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
