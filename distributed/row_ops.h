// File: row_ops.h
//
// The element-wise work the sequence-parallel implementations do around the
// attention kernels: copying the selected rows of a dilated group between
// the shard's tensors and dense buffers, zeroing, and merging partial
// attention results exactly by their log-sum-exp. Plain structs and
// functions, one set for the host (row_ops_cpu.cc) and one for a CUDA stream
// (row_ops_cuda.cu), so that no Abseil type crosses into the .cu file.
//
// A row view is a kernels::TensorParams over [batch, rows, heads, head_dim]
// (strides in elements, contiguous last axis). An lse view is [batch, heads,
// rows] floats with explicit strides. An accumulator is a contiguous float32
// [rows, batch, heads, head_dim] array with a contiguous float32 [batch,
// heads, rows] lse.

#ifndef DISTRIBUTED_ROW_OPS_H_
#define DISTRIBUTED_ROW_OPS_H_

#include <cstdint>

#include "kernels/dilated_params.h"

namespace dilated {
namespace distributed {

struct RowsShape {
  int64_t batch;
  int64_t rows;
  int64_t heads;
  int64_t head_dim;
};

struct LseView {
  float* data;
  int64_t stride_b;
  int64_t stride_h;
  int64_t stride_n;
};

struct Accumulator {
  float* data;  // [rows, batch, heads, head_dim]
  float* lse;   // [batch, heads, rows]; null for sums of gradients.
};

// Returns the row view of a contiguous [rows, batch, heads, head_dim] buffer,
// the layout of every dense buffer that travels between ranks (a block of
// consecutive rows is one contiguous range of bytes).
inline kernels::TensorParams DenseRows(void* data, const RowsShape& shape) {
  return kernels::TensorParams{data, shape.heads * shape.head_dim,
                               shape.batch * shape.heads * shape.head_dim,
                               shape.head_dim};
}

// Returns the lse view of a contiguous [batch, heads, rows] float array.
inline LseView DenseLse(float* data, const RowsShape& shape) {
  return LseView{data, shape.heads * shape.rows, shape.rows, 1};
}

namespace cpu {

void CopyRows(kernels::DataType dtype, const RowsShape& shape,
              const kernels::TensorParams& src,
              const kernels::TensorParams& dst);
void ZeroRows(kernels::DataType dtype, const RowsShape& shape,
              const kernels::TensorParams& dst);
void FillLse(const RowsShape& shape, const LseView& dst, float value);
void CopyLse(const RowsShape& shape, const LseView& src, const LseView& dst);
// acc = 0 and, when acc.lse is set, acc.lse = -inf.
void ClearAccumulator(const RowsShape& shape, const Accumulator& acc);
// Folds a normalised partial result (piece, piece_lse) into acc: with
// lse' = log(exp(acc.lse) + exp(piece_lse)), acc = acc * exp(acc.lse - lse')
// + piece * exp(piece_lse - lse'), evaluated around the larger of the two so
// that nothing overflows; rows where both are -inf stay empty.
void MergeInto(kernels::DataType dtype, const RowsShape& shape,
               const kernels::TensorParams& piece, const LseView& piece_lse,
               const Accumulator& acc);
// acc += src.
void AddInto(kernels::DataType dtype, const RowsShape& shape,
             const kernels::TensorParams& src, const Accumulator& acc);
// dst = scale * acc, rounded to dtype; dst_lse (when data is set) = acc.lse.
void StoreAccumulator(kernels::DataType dtype, const RowsShape& shape,
                      const Accumulator& acc, float scale,
                      const kernels::TensorParams& dst, const LseView& dst_lse);

}  // namespace cpu

namespace gpu {

// As above, queued on `stream` (a cudaStream_t); returns a cudaError_t as
// int so that this header needs no CUDA include.
int CopyRows(kernels::DataType dtype, const RowsShape& shape,
             const kernels::TensorParams& src, const kernels::TensorParams& dst,
             void* stream);
int ZeroRows(kernels::DataType dtype, const RowsShape& shape,
             const kernels::TensorParams& dst, void* stream);
int FillLse(const RowsShape& shape, const LseView& dst, float value,
            void* stream);
int CopyLse(const RowsShape& shape, const LseView& src, const LseView& dst,
            void* stream);
int ClearAccumulator(const RowsShape& shape, const Accumulator& acc,
                     void* stream);
int MergeInto(kernels::DataType dtype, const RowsShape& shape,
              const kernels::TensorParams& piece, const LseView& piece_lse,
              const Accumulator& acc, void* stream);
int AddInto(kernels::DataType dtype, const RowsShape& shape,
            const kernels::TensorParams& src, const Accumulator& acc,
            void* stream);
int StoreAccumulator(kernels::DataType dtype, const RowsShape& shape,
                     const Accumulator& acc, float scale,
                     const kernels::TensorParams& dst, const LseView& dst_lse,
                     void* stream);

}  // namespace gpu
}  // namespace distributed
}  // namespace dilated

#endif  // DISTRIBUTED_ROW_OPS_H_
