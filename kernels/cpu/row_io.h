// File: row_io.h
//
// Reads and writes rows of head_dim elements stored as float32, float16 or
// bfloat16, converting to and from float32 (the CPU kernels' compute type).

#ifndef KERNELS_CPU_ROW_IO_H_
#define KERNELS_CPU_ROW_IO_H_

#include <cstdint>
#include <cstring>

#include "kernels/dilated_params.h"
#include "kernels/numeric.h"

namespace dilated {
namespace kernels {
namespace cpu {

// Returns the address of element [b, n, h, 0] of `t`.
inline char* RowAddress(const TensorParams& t, DataType dtype, int64_t b,
                        int64_t n, int64_t h) {
  const int64_t element_size = dtype == DataType::kFloat32 ? 4 : 2;
  return static_cast<char*>(t.data) +
         (b * t.stride_b + n * t.stride_n + h * t.stride_h) * element_size;
}

// Converts `count` stored elements at `src` to float32 at `dst`.
inline void LoadRow(const void* src, DataType dtype, int64_t count,
                    float* dst) {
  switch (dtype) {
    case DataType::kFloat32:
    default:  // int32 and bool tensors never reach a float conversion
      std::memcpy(dst, src, count * sizeof(float));
      return;
    case DataType::kFloat16: {
      const uint16_t* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < count; ++i) dst[i] = HalfToFloat(h[i]);
      return;
    }
    case DataType::kBFloat16: {
      const uint16_t* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < count; ++i) dst[i] = BFloat16ToFloat(h[i]);
      return;
    }
  }
}

// Converts `count` float32 values at `src` to the storage type at `dst`.
inline void StoreRow(const float* src, DataType dtype, int64_t count,
                     void* dst) {
  switch (dtype) {
    case DataType::kFloat32:
    default:  // int32 and bool tensors never reach a float conversion
      std::memcpy(dst, src, count * sizeof(float));
      return;
    case DataType::kFloat16: {
      uint16_t* h = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < count; ++i) h[i] = FloatToHalf(src[i]);
      return;
    }
    case DataType::kBFloat16: {
      uint16_t* h = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < count; ++i) h[i] = FloatToBFloat16(src[i]);
      return;
    }
  }
}

// Returns the number of threads OpenMP regions use by default.
int MaxThreads();

// Sets every [b, n, h, :] row of `t` (shape batch x seq x heads) to zero.
void ZeroTensor(const TensorParams& t, DataType dtype, int64_t batch,
                int64_t seq, int64_t heads, int64_t head_dim);

// Sets every entry of the [batch, heads, seq] log-sum-exp to -inf.
void FillLseWithNegativeInfinity(const ForwardParams& params);

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CPU_ROW_IO_H_
