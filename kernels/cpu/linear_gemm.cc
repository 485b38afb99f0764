#include "kernels/cpu/linear_gemm.h"

#include <immintrin.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <memory>

#include "kernels/cpu/cpu_path.h"
#include "kernels/cpu/linear_gemm_amx.h"

// The file is compiled for x86-64-v3 like the rest of the library; only the
// functions marked DA_LINEAR_AVX512 use AVX-512, and they are reached only
// when cpu_path.h reports it.
#define DA_LINEAR_AVX512 \
  __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl")))

namespace dilated {
namespace kernels {
namespace cpu {
namespace {

// Output tile: 14 rows x 32 columns, 28 zmm accumulators (of 32).
constexpr int kTileRows = 14;
constexpr int kPanelColumns = 32;
// Products summed per pass over a tile; a 256 x 32 weight panel (32 KiB)
// stays in L1 while the tile's x rows stream past it.
constexpr int64_t kDepthBlock = 512;
// Columns per pass over a block of rows: the 256 x 1024 packed weights
// (1 MiB) stay in the core's L2 across the block's tiles.
constexpr int64_t kColumnBlock = 1024;
// Rows per unit of thread work: its 112 x 1024 partial sums (448 KiB) share
// L2 with the weights.
constexpr int64_t kRowBlock = 8 * kTileRows;

inline int64_t Min(int64_t a, int64_t b) { return a < b ? a : b; }

// Packs w^T into panels of 32 columns: element (k, j) of panel p, that is
// w[32 p + j][k], at packed[(p * in + k) * 32 + j]; columns past `out` are 0.
void PackWeightPanel(const float* w, int64_t in, int64_t out, int64_t panel,
                     float* packed) {
  float* dst = packed + panel * in * kPanelColumns;
  for (int j = 0; j < kPanelColumns; ++j) {
    const int64_t row = panel * kPanelColumns + j;
    if (row >= out) {
      for (int64_t k = 0; k < in; ++k) dst[k * kPanelColumns + j] = 0.0f;
      continue;
    }
    const float* src = w + row * in;
    for (int64_t k = 0; k < in; ++k) dst[k * kPanelColumns + j] = src[k];
  }
}

struct TileArgs {
  const float* x;  // first row, first product of the tile
  int64_t ldx;
  const float* panel;  // packed weights at the same product
  int64_t depth;       // products in this pass
  bool first;          // start from zero instead of y's partial sums
  bool last;           // apply the epilogue and store final values
  const float* bias;   // at the tile's first column, or null
  bool relu;
  __mmask16 low_lanes;   // columns 0..15 of the tile that exist
  __mmask16 high_lanes;  // columns 16..31
  float* y;
  int64_t ldy;
};

template <int kRows>
DA_LINEAR_AVX512 void Tile(const TileArgs& args) {
  __m512 acc[kRows][2];
  for (int r = 0; r < kRows; ++r) {
    if (args.first) {
      acc[r][0] = _mm512_setzero_ps();
      acc[r][1] = _mm512_setzero_ps();
    } else {
      acc[r][0] = _mm512_maskz_loadu_ps(args.low_lanes, args.y + r * args.ldy);
      acc[r][1] =
          _mm512_maskz_loadu_ps(args.high_lanes, args.y + r * args.ldy + 16);
    }
  }
  const float* x = args.x;
  const float* panel = args.panel;
  for (int64_t k = 0; k < args.depth; ++k) {
    // The panel row 16 products ahead (possibly past the panel: prefetches
    // do not fault): its loads from L2 then do not stall the FMAs.
    _mm_prefetch(
        reinterpret_cast<const char*>(panel + (k + 16) * kPanelColumns),
        _MM_HINT_T0);
    _mm_prefetch(
        reinterpret_cast<const char*>(panel + (k + 16) * kPanelColumns + 16),
        _MM_HINT_T0);
    const __m512 b0 = _mm512_loadu_ps(panel + k * kPanelColumns);
    const __m512 b1 = _mm512_loadu_ps(panel + k * kPanelColumns + 16);
    for (int r = 0; r < kRows; ++r) {
      const __m512 a = _mm512_set1_ps(x[r * args.ldx + k]);
      acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
    }
  }
  if (args.last) {
    if (args.bias != nullptr) {
      const __m512 bias0 = _mm512_maskz_loadu_ps(args.low_lanes, args.bias);
      const __m512 bias1 =
          _mm512_maskz_loadu_ps(args.high_lanes, args.bias + 16);
      for (int r = 0; r < kRows; ++r) {
        acc[r][0] = _mm512_add_ps(acc[r][0], bias0);
        acc[r][1] = _mm512_add_ps(acc[r][1], bias1);
      }
    }
    if (args.relu) {
      const __m512 zero = _mm512_setzero_ps();
      for (int r = 0; r < kRows; ++r) {
        acc[r][0] = _mm512_max_ps(acc[r][0], zero);
        acc[r][1] = _mm512_max_ps(acc[r][1], zero);
      }
    }
  }
  for (int r = 0; r < kRows; ++r) {
    _mm512_mask_storeu_ps(args.y + r * args.ldy, args.low_lanes, acc[r][0]);
    _mm512_mask_storeu_ps(args.y + r * args.ldy + 16, args.high_lanes,
                          acc[r][1]);
  }
}

using TileFunction = void (*)(const TileArgs&);

// kTiles[r - 1] computes a tile of r rows.
constexpr TileFunction kTiles[kTileRows] = {
    Tile<1>, Tile<2>, Tile<3>,  Tile<4>,  Tile<5>,  Tile<6>,  Tile<7>,
    Tile<8>, Tile<9>, Tile<10>, Tile<11>, Tile<12>, Tile<13>, Tile<14>};

__mmask16 Lanes(int64_t count) {
  if (count <= 0) return 0;
  if (count >= 16) return 0xffff;
  return static_cast<__mmask16>((1u << count) - 1);
}

struct Problem {
  const float* x;
  int64_t rows;
  int64_t in;
  int64_t ldx;
  const float* packed;
  int64_t out;
  LinearEpilogue epilogue;
  float* y;
  int64_t ldy;
};

// Computes rows [row_begin, row_end) of the output: per block of columns,
// every depth block in turn, so that the block's partial sums (at most
// 112 x 1024 floats) stay in L2 between the depth blocks.
void RowBlock(const Problem& p, int64_t row_begin, int64_t row_end) {
  for (int64_t column_begin = 0; column_begin < p.out;
       column_begin += kColumnBlock) {
    const int64_t column_end = Min(p.out, column_begin + kColumnBlock);
    for (int64_t depth_begin = 0; depth_begin < p.in;
         depth_begin += kDepthBlock) {
      const int64_t depth = Min(kDepthBlock, p.in - depth_begin);
      for (int64_t row = row_begin; row < row_end; row += kTileRows) {
        TileArgs args;
        args.x = p.x + row * p.ldx + depth_begin;
        args.ldx = p.ldx;
        args.depth = depth;
        args.first = depth_begin == 0;
        args.last = depth_begin + depth == p.in;
        args.relu = p.epilogue.relu;
        args.ldy = p.ldy;
        const TileFunction tile = kTiles[Min(kTileRows, row_end - row) - 1];
        for (int64_t column = column_begin; column < column_end;
             column += kPanelColumns) {
          const int64_t columns = column_end - column;
          args.panel = p.packed +
                       (column / kPanelColumns) * p.in * kPanelColumns +
                       depth_begin * kPanelColumns;
          args.bias =
              p.epilogue.bias == nullptr ? nullptr : p.epilogue.bias + column;
          args.low_lanes = Lanes(columns);
          args.high_lanes = Lanes(columns - 16);
          args.y = p.y + row * p.ldy + column;
          tile(args);
        }
      }
    }
  }
}

std::atomic<MatmulPrecision> matmul_precision{MatmulPrecision::kHighest};

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};

}  // namespace

void SetFloat32MatmulPrecision(MatmulPrecision precision) {
  matmul_precision.store(precision, std::memory_order_relaxed);
}

MatmulPrecision Float32MatmulPrecision() {
  return matmul_precision.load(std::memory_order_relaxed);
}

const char* MatmulPrecisionName(MatmulPrecision precision) {
  switch (precision) {
    case MatmulPrecision::kHighest:
      return "highest";
    case MatmulPrecision::kHigh:
      return "high";
    case MatmulPrecision::kMedium:
      return "medium";
  }
  return "unknown";
}

bool ParseMatmulPrecision(const char* name, MatmulPrecision* precision) {
  for (MatmulPrecision candidate :
       {MatmulPrecision::kHighest, MatmulPrecision::kHigh,
        MatmulPrecision::kMedium}) {
    if (std::strcmp(name, MatmulPrecisionName(candidate)) == 0) {
      *precision = candidate;
      return true;
    }
  }
  return false;
}

bool LinearGemmFloat32(const float* x, int64_t rows, int64_t in, int64_t ldx,
                       const float* w, int64_t out,
                       const LinearEpilogue& epilogue, float* y, int64_t ldy) {
  const CpuPath path = ActiveCpuPath();
  if (path == CpuPath::kAvx2) return false;
  const MatmulPrecision precision = Float32MatmulPrecision();
  if (path == CpuPath::kAmx && precision != MatmulPrecision::kHighest) {
    LinearGemmAmx(x, rows, in, ldx, w, out, epilogue,
                  precision == MatmulPrecision::kHigh ? 2 : 1, y, ldy);
    return true;
  }
  const int64_t panels = (out + kPanelColumns - 1) / kPanelColumns;
  const size_t bytes =
      static_cast<size_t>(panels * in * kPanelColumns) * sizeof(float);
  std::unique_ptr<float, FreeDeleter> packed(
      static_cast<float*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64)));
  if (packed == nullptr) return false;
  const Problem problem{x, rows, in, ldx, packed.get(), out, epilogue, y, ldy};
  const int64_t row_blocks = (rows + kRowBlock - 1) / kRowBlock;
#pragma omp parallel
  {
#pragma omp for schedule(static)
    for (int64_t panel = 0; panel < panels; ++panel) {
      PackWeightPanel(w, in, out, panel, packed.get());
    }
#pragma omp for schedule(dynamic, 1)
    for (int64_t block = 0; block < row_blocks; ++block) {
      const int64_t begin = block * kRowBlock;
      RowBlock(problem, begin, Min(rows, begin + kRowBlock));
    }
  }
  return true;
}

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated
