#include "kernels/cpu/longnet_merge.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/cpu/row_io.h"
#include "kernels/cpu/simd_convert.h"

namespace dilated {
namespace kernels {
namespace cpu {
namespace {

constexpr float kMinusInf = -std::numeric_limits<float>::infinity();

// The storage batch entry, position and head of (row, head) pair `r`.
struct RowHead {
  int64_t b, n, h;
};

RowHead Locate(const ForwardParams& p, int64_t r) {
  const int64_t row = r / p.num_heads;
  const bool packed = IsPacked(p);
  return RowHead{packed ? 0 : row / p.seq_len, packed ? row : row % p.seq_len,
                 r % p.num_heads};
}

int64_t Pairs(const ForwardParams& p) {
  return StorageBatch(p) * p.seq_len * p.num_heads;
}

}  // namespace

void LongNetMerge(const ForwardParams& p,
                  const LongNetBranchOutputs& branches) {
  const int count = branches.count;
#pragma omp parallel
  {
    std::vector<float> row(p.head_dim), sum(p.head_dim);
    float weight[kMaxGroups];
#pragma omp for schedule(static)
    for (int64_t r = 0; r < Pairs(p); ++r) {
      const RowHead at = Locate(p, r);
      const int64_t lse_at =
          at.b * branches.lse_stride_b + at.h * branches.lse_stride_h + at.n;
      float max = kMinusInf;
      for (int i = 0; i < count; ++i) {
        max = std::max(max, branches.lse[i][lse_at]);
      }
      std::fill(sum.begin(), sum.end(), 0.0f);
      float total = 0.0f;
      if (max != kMinusInf) {
        for (int i = 0; i < count; ++i) {
          weight[i] = std::exp(branches.lse[i][lse_at] - max);
          total += weight[i];
        }
        for (int i = 0; i < count; ++i) {
          if (weight[i] == 0.0f) continue;
          LoadRowFast(RowAddress(branches.out[i], p.dtype, at.b, at.n, at.h),
                      p.dtype, p.head_dim, row.data());
          const float w = weight[i] / total;
          for (int64_t a = 0; a < p.head_dim; ++a) sum[a] += w * row[a];
        }
      }
      StoreRow(sum.data(), p.dtype, p.head_dim,
               RowAddress(p.out, p.dtype, at.b, at.n, at.h));
      if (p.lse != nullptr) {
        p.lse[at.b * p.lse_stride_b + at.h * p.lse_stride_h + at.n] =
            total > 0.0f ? max + std::log(total) : kMinusInf;
      }
    }
  }
}

void LongNetAccumulate(const ForwardParams& p, const TensorParams& t,
                       float* sum) {
#pragma omp parallel
  {
    std::vector<float> row(p.head_dim);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < Pairs(p); ++r) {
      const RowHead at = Locate(p, r);
      LoadRowFast(RowAddress(t, p.dtype, at.b, at.n, at.h), p.dtype, p.head_dim,
                  row.data());
      float* acc = sum + r * p.head_dim;
      for (int64_t a = 0; a < p.head_dim; ++a) acc[a] += row[a];
    }
  }
}

void LongNetStore(const ForwardParams& p, const float* sum,
                  const TensorParams& t) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < Pairs(p); ++r) {
    const RowHead at = Locate(p, r);
    StoreRow(sum + r * p.head_dim, p.dtype, p.head_dim,
             RowAddress(t, p.dtype, at.b, at.n, at.h));
  }
}

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated
