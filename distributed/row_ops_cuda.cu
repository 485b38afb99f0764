// CUDA implementations of row_ops.h: one thread per element of the
// (batch, row, head, dim) space in a grid-stride loop; float32 arithmetic.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "distributed/row_ops.h"

namespace dilated {
namespace distributed {
namespace gpu {
namespace {

using kernels::DataType;
using kernels::TensorParams;

constexpr int kThreads = 256;

struct Index {
  int64_t b, n, h, i;
};

__device__ Index Decode(const RowsShape& s, int64_t flat) {
  Index x;
  x.i = flat % s.head_dim;
  flat /= s.head_dim;
  x.h = flat % s.heads;
  flat /= s.heads;
  x.n = flat % s.rows;
  x.b = flat / s.rows;
  return x;
}

__device__ int64_t Offset(const TensorParams& t, const Index& x) {
  return x.b * t.stride_b + x.n * t.stride_n + x.h * t.stride_h + x.i;
}

__device__ float Load(DataType dtype, const void* data, int64_t offset) {
  switch (dtype) {
    case DataType::kFloat16:
      return __half2float(static_cast<const __half*>(data)[offset]);
    case DataType::kBFloat16:
      return __bfloat162float(static_cast<const __nv_bfloat16*>(data)[offset]);
    default:
      return static_cast<const float*>(data)[offset];
  }
}

__device__ void Store(DataType dtype, float value, void* data, int64_t offset) {
  switch (dtype) {
    case DataType::kFloat16:
      static_cast<__half*>(data)[offset] = __float2half_rn(value);
      return;
    case DataType::kBFloat16:
      static_cast<__nv_bfloat16*>(data)[offset] = __float2bfloat16_rn(value);
      return;
    default:
      static_cast<float*>(data)[offset] = value;
  }
}

__device__ int64_t AccOffset(const RowsShape& s, const Index& x) {
  return ((x.n * s.batch + x.b) * s.heads + x.h) * s.head_dim + x.i;
}

__device__ int64_t AccLseOffset(const RowsShape& s, const Index& x) {
  return (x.b * s.heads + x.h) * s.rows + x.n;
}

__device__ float* LseAt(const LseView& v, const Index& x) {
  return v.data + x.b * v.stride_b + x.h * v.stride_h + x.n * v.stride_n;
}

enum class Op { kCopy, kZero, kClear, kMerge, kAdd, kStore };

struct Args {
  Op op;
  DataType dtype;
  RowsShape shape;
  TensorParams src;
  TensorParams dst;
  LseView src_lse;
  LseView dst_lse;
  Accumulator acc;
  float value;
};

// Element-wise work; the lse of a row is read or written by its element 0.
__global__ void RowKernel(Args a, int64_t total) {
  for (int64_t flat = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
       flat < total; flat += int64_t{gridDim.x} * blockDim.x) {
    const Index x = Decode(a.shape, flat);
    switch (a.op) {
      case Op::kCopy:
        Store(a.dtype, Load(a.dtype, a.src.data, Offset(a.src, x)), a.dst.data,
              Offset(a.dst, x));
        break;
      case Op::kZero:
        Store(a.dtype, 0.0f, a.dst.data, Offset(a.dst, x));
        break;
      case Op::kClear:
        a.acc.data[AccOffset(a.shape, x)] = 0.0f;
        if (x.i == 0 && a.acc.lse != nullptr) {
          a.acc.lse[AccLseOffset(a.shape, x)] = -INFINITY;
        }
        break;
      case Op::kMerge: {
        // The row's lse is updated by the LseKernel launch that follows, so
        // every element of the row reads the old value here.
        const float old_lse = a.acc.lse[AccLseOffset(a.shape, x)];
        const float incoming = *LseAt(a.src_lse, x);
        if (incoming == -INFINITY) break;
        const float high = fmaxf(old_lse, incoming);
        const float keep = __expf(old_lse - high);
        const float take = __expf(incoming - high);
        const float total_weight = keep + take;
        float* acc = a.acc.data + AccOffset(a.shape, x);
        *acc =
            (keep * *acc + take * Load(a.dtype, a.src.data, Offset(a.src, x))) /
            total_weight;
        break;
      }
      case Op::kAdd:
        a.acc.data[AccOffset(a.shape, x)] +=
            Load(a.dtype, a.src.data, Offset(a.src, x));
        break;
      case Op::kStore:
        Store(a.dtype, a.value * a.acc.data[AccOffset(a.shape, x)], a.dst.data,
              Offset(a.dst, x));
        if (x.i == 0 && a.dst_lse.data != nullptr) {
          *LseAt(a.dst_lse, x) = a.acc.lse[AccLseOffset(a.shape, x)];
        }
        break;
    }
  }
}

// One thread per row: lse fill, copy, and the lse update of a merge (after
// the element pass of the merge has read the old values).
enum class LseOp { kFill, kCopy, kMerge };

__global__ void LseKernel(LseOp op, RowsShape shape, LseView src, LseView dst,
                          Accumulator acc, float value, int64_t total) {
  for (int64_t flat = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
       flat < total; flat += int64_t{gridDim.x} * blockDim.x) {
    Index x;
    x.i = 0;
    x.h = flat % shape.heads;
    x.n = (flat / shape.heads) % shape.rows;
    x.b = flat / (shape.heads * shape.rows);
    switch (op) {
      case LseOp::kFill:
        *LseAt(dst, x) = value;
        break;
      case LseOp::kCopy:
        *LseAt(dst, x) = *LseAt(src, x);
        break;
      case LseOp::kMerge: {
        float* lse = acc.lse + AccLseOffset(shape, x);
        const float incoming = *LseAt(src, x);
        if (incoming == -INFINITY) break;
        const float high = fmaxf(*lse, incoming);
        *lse = high + logf(__expf(*lse - high) + __expf(incoming - high));
        break;
      }
    }
  }
}

int Blocks(int64_t total) {
  const int64_t blocks = (total + kThreads - 1) / kThreads;
  return static_cast<int>(blocks < 65535 * 16 ? (blocks > 0 ? blocks : 1)
                                              : 65535 * 16);
}

int Launch(const Args& args, void* stream) {
  const RowsShape& s = args.shape;
  const int64_t total = s.batch * s.rows * s.heads * s.head_dim;
  if (total == 0) return cudaSuccess;
  RowKernel<<<Blocks(total), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      args, total);
  return cudaGetLastError();
}

int LaunchLse(LseOp op, const RowsShape& s, const LseView& src,
              const LseView& dst, const Accumulator& acc, float value,
              void* stream) {
  const int64_t total = s.batch * s.rows * s.heads;
  if (total == 0) return cudaSuccess;
  LseKernel<<<Blocks(total), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      op, s, src, dst, acc, value, total);
  return cudaGetLastError();
}

Args MakeArgs(Op op, DataType dtype, const RowsShape& shape) {
  Args a{};
  a.op = op;
  a.dtype = dtype;
  a.shape = shape;
  return a;
}

}  // namespace

int CopyRows(DataType dtype, const RowsShape& shape, const TensorParams& src,
             const TensorParams& dst, void* stream) {
  Args a = MakeArgs(Op::kCopy, dtype, shape);
  a.src = src;
  a.dst = dst;
  return Launch(a, stream);
}

int ZeroRows(DataType dtype, const RowsShape& shape, const TensorParams& dst,
             void* stream) {
  Args a = MakeArgs(Op::kZero, dtype, shape);
  a.dst = dst;
  return Launch(a, stream);
}

int FillLse(const RowsShape& shape, const LseView& dst, float value,
            void* stream) {
  return LaunchLse(LseOp::kFill, shape, LseView{}, dst, Accumulator{}, value,
                   stream);
}

int CopyLse(const RowsShape& shape, const LseView& src, const LseView& dst,
            void* stream) {
  return LaunchLse(LseOp::kCopy, shape, src, dst, Accumulator{}, 0.0f, stream);
}

int ClearAccumulator(const RowsShape& shape, const Accumulator& acc,
                     void* stream) {
  Args a = MakeArgs(Op::kClear, DataType::kFloat32, shape);
  a.acc = acc;
  return Launch(a, stream);
}

int MergeInto(DataType dtype, const RowsShape& shape, const TensorParams& piece,
              const LseView& piece_lse, const Accumulator& acc, void* stream) {
  Args a = MakeArgs(Op::kMerge, dtype, shape);
  a.src = piece;
  a.src_lse = piece_lse;
  a.acc = acc;
  const int status = Launch(a, stream);
  if (status != cudaSuccess) return status;
  return LaunchLse(LseOp::kMerge, shape, piece_lse, LseView{}, acc, 0.0f,
                   stream);
}

int AddInto(DataType dtype, const RowsShape& shape, const TensorParams& src,
            const Accumulator& acc, void* stream) {
  Args a = MakeArgs(Op::kAdd, dtype, shape);
  a.src = src;
  a.acc = acc;
  return Launch(a, stream);
}

int StoreAccumulator(DataType dtype, const RowsShape& shape,
                     const Accumulator& acc, float scale,
                     const TensorParams& dst, const LseView& dst_lse,
                     void* stream) {
  Args a = MakeArgs(Op::kStore, dtype, shape);
  a.acc = acc;
  a.value = scale;
  a.dst = dst;
  a.dst_lse = dst_lse;
  return Launch(a, stream);
}

}  // namespace gpu
}  // namespace distributed
}  // namespace dilated
