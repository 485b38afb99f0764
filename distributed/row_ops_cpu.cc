// Host implementations of row_ops.h: plain loops over (batch, row, head),
// float32 arithmetic, one conversion per element on the way in and out.

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "distributed/row_ops.h"
#include "kernels/numeric.h"

namespace dilated {
namespace distributed {
namespace cpu {
namespace {

using kernels::DataType;
using kernels::TensorParams;

int64_t ElementBytes(DataType dtype) {
  return dtype == DataType::kFloat32 ? 4 : 2;
}

char* RowAddress(const TensorParams& t, DataType dtype, int64_t b, int64_t n,
                 int64_t h) {
  return static_cast<char*>(t.data) +
         (b * t.stride_b + n * t.stride_n + h * t.stride_h) *
             ElementBytes(dtype);
}

float Load(DataType dtype, const char* row, int64_t i) {
  switch (dtype) {
    case DataType::kFloat16:
      return kernels::HalfToFloat(reinterpret_cast<const uint16_t*>(row)[i]);
    case DataType::kBFloat16:
      return kernels::BFloat16ToFloat(
          reinterpret_cast<const uint16_t*>(row)[i]);
    default:
      return reinterpret_cast<const float*>(row)[i];
  }
}

void Store(DataType dtype, float value, char* row, int64_t i) {
  switch (dtype) {
    case DataType::kFloat16:
      reinterpret_cast<uint16_t*>(row)[i] = kernels::FloatToHalf(value);
      return;
    case DataType::kBFloat16:
      reinterpret_cast<uint16_t*>(row)[i] = kernels::FloatToBFloat16(value);
      return;
    default:
      reinterpret_cast<float*>(row)[i] = value;
  }
}

float* AccRow(const RowsShape& s, const Accumulator& acc, int64_t b, int64_t n,
              int64_t h) {
  return acc.data + ((n * s.batch + b) * s.heads + h) * s.head_dim;
}

float* AccLse(const RowsShape& s, const Accumulator& acc, int64_t b, int64_t n,
              int64_t h) {
  return acc.lse + (b * s.heads + h) * s.rows + n;
}

float* LseAt(const LseView& v, int64_t b, int64_t n, int64_t h) {
  return v.data + b * v.stride_b + h * v.stride_h + n * v.stride_n;
}

// Calls fn(b, n, h) for every row of every head.
template <typename Fn>
void ForEachRow(const RowsShape& s, Fn fn) {
  for (int64_t b = 0; b < s.batch; ++b) {
    for (int64_t n = 0; n < s.rows; ++n) {
      for (int64_t h = 0; h < s.heads; ++h) fn(b, n, h);
    }
  }
}

}  // namespace

void CopyRows(DataType dtype, const RowsShape& shape, const TensorParams& src,
              const TensorParams& dst) {
  const int64_t bytes = shape.head_dim * ElementBytes(dtype);
  ForEachRow(shape, [&](int64_t b, int64_t n, int64_t h) {
    std::memcpy(RowAddress(dst, dtype, b, n, h),
                RowAddress(src, dtype, b, n, h), bytes);
  });
}

void ZeroRows(DataType dtype, const RowsShape& shape, const TensorParams& dst) {
  const int64_t bytes = shape.head_dim * ElementBytes(dtype);
  ForEachRow(shape, [&](int64_t b, int64_t n, int64_t h) {
    std::memset(RowAddress(dst, dtype, b, n, h), 0, bytes);
  });
}

void FillLse(const RowsShape& shape, const LseView& dst, float value) {
  ForEachRow(shape, [&](int64_t b, int64_t n, int64_t h) {
    *LseAt(dst, b, n, h) = value;
  });
}

void CopyLse(const RowsShape& shape, const LseView& src, const LseView& dst) {
  ForEachRow(shape, [&](int64_t b, int64_t n, int64_t h) {
    *LseAt(dst, b, n, h) = *LseAt(src, b, n, h);
  });
}

void ClearAccumulator(const RowsShape& shape, const Accumulator& acc) {
  std::fill(acc.data,
            acc.data + shape.rows * shape.batch * shape.heads * shape.head_dim,
            0.0f);
  if (acc.lse != nullptr) {
    std::fill(acc.lse, acc.lse + shape.batch * shape.heads * shape.rows,
              -std::numeric_limits<float>::infinity());
  }
}

void MergeInto(DataType dtype, const RowsShape& shape,
               const TensorParams& piece, const LseView& piece_lse,
               const Accumulator& acc) {
  ForEachRow(shape, [&](int64_t b, int64_t n, int64_t h) {
    float* lse = AccLse(shape, acc, b, n, h);
    const float incoming = *LseAt(piece_lse, b, n, h);
    if (incoming == -std::numeric_limits<float>::infinity()) return;
    const float high = std::max(*lse, incoming);
    const float keep = std::exp(*lse - high);
    const float take = std::exp(incoming - high);
    const float total = keep + take;
    const float a = keep / total;
    const float c = take / total;
    float* row = AccRow(shape, acc, b, n, h);
    const char* in = RowAddress(piece, dtype, b, n, h);
    for (int64_t i = 0; i < shape.head_dim; ++i) {
      row[i] = a * row[i] + c * Load(dtype, in, i);
    }
    *lse = high + std::log(total);
  });
}

void AddInto(DataType dtype, const RowsShape& shape, const TensorParams& src,
             const Accumulator& acc) {
  ForEachRow(shape, [&](int64_t b, int64_t n, int64_t h) {
    float* row = AccRow(shape, acc, b, n, h);
    const char* in = RowAddress(src, dtype, b, n, h);
    for (int64_t i = 0; i < shape.head_dim; ++i) row[i] += Load(dtype, in, i);
  });
}

void StoreAccumulator(DataType dtype, const RowsShape& shape,
                      const Accumulator& acc, float scale,
                      const TensorParams& dst, const LseView& dst_lse) {
  ForEachRow(shape, [&](int64_t b, int64_t n, int64_t h) {
    const float* row = AccRow(shape, acc, b, n, h);
    char* out = RowAddress(dst, dtype, b, n, h);
    for (int64_t i = 0; i < shape.head_dim; ++i) {
      Store(dtype, scale * row[i], out, i);
    }
    if (dst_lse.data != nullptr) {
      *LseAt(dst_lse, b, n, h) = *AccLse(shape, acc, b, n, h);
    }
  });
}

}  // namespace cpu
}  // namespace distributed
}  // namespace dilated
