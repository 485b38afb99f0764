#include "kernels/cpu/row_io.h"

#include <omp.h>

#include <limits>

namespace dilated {
namespace kernels {
namespace cpu {

int MaxThreads() { return omp_get_max_threads(); }

void ZeroTensor(const TensorParams& t, DataType dtype, int64_t batch,
                int64_t seq, int64_t heads, int64_t head_dim) {
  const int64_t row_bytes = head_dim * (dtype == DataType::kFloat32 ? 4 : 2);
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t n = 0; n < seq; ++n) {
      for (int64_t h = 0; h < heads; ++h) {
        std::memset(RowAddress(t, dtype, b, n, h), 0, row_bytes);
      }
    }
  }
}

void FillLseWithNegativeInfinity(const ForwardParams& params) {
  if (params.lse == nullptr) return;
  const float minus_inf = -std::numeric_limits<float>::infinity();
  for (int64_t b = 0; b < StorageBatch(params); ++b) {
    for (int64_t h = 0; h < params.num_heads; ++h) {
      float* row =
          params.lse + b * params.lse_stride_b + h * params.lse_stride_h;
      for (int64_t n = 0; n < params.seq_len; ++n) row[n] = minus_inf;
    }
  }
}

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated
