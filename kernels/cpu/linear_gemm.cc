#include "kernels/cpu/linear_gemm.h"

#include <immintrin.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <memory>

#include "kernels/cpu/cpu_path.h"
#include "kernels/cpu/linear_direct.h"
#include "kernels/cpu/linear_gemm_amx.h"
#include "kernels/cpu/simd_transpose.h"

// The file is compiled for x86-64-v3 like the rest of the library; only the
// functions marked DA_LINEAR_AVX512 use AVX-512, and they are reached only
// when cpu_path.h reports it.
#define DA_LINEAR_AVX512 \
  __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl")))

namespace dilated {
namespace kernels {
namespace cpu {
namespace {

// The blocking of one instruction set's tiles. A tile is tile_rows x
// panel_columns outputs held in registers; a pass over it sums depth_block
// products (the weight panel's depth_block x panel_columns values stay in
// L1 while the tile's x rows stream past); a block of rows is one unit of
// thread work and meets the packed weights column_block columns at a time
// (depth_block x column_block weights, and the block's partial sums, stay in
// the core's L2 across the block's tiles).
struct Blocking {
  int tile_rows;
  int panel_columns;
  int64_t depth_block;
  int64_t column_block;
  int64_t row_block;
};

// AVX-512: 14 x 32 tiles, 28 zmm accumulators (of 32); depth blocks of 512,
// column blocks of 1024, row blocks of 112 (chosen on a Xeon with
// 48 KiB of L1d and 2 MiB of L2 per core).
constexpr Blocking kAvx512Blocking{14, 32, 512, 1024, 112};
// AVX2: 6 x 16 tiles, 12 ymm accumulators (of 16); depth blocks of 512,
// column blocks of 128, row blocks of 48 (measured best on an AMD EPYC with
// 32 KiB of L1d and 512 KiB of L2 per core).
constexpr Blocking kAvx2Blocking{6, 16, 512, 128, 48};

inline int64_t Min(int64_t a, int64_t b) { return a < b ? a : b; }

// Packs w^T into panels of `columns` columns: element (k, j) of panel p,
// that is w[columns * p + j][k], at packed[(p * in + k) * columns + j];
// columns past `out` are 0. Whole 8 x 8 blocks (eight rows of w, eight
// products) move by in-register transposes; the edges element by element.
void PackWeightPanel(const float* w, int64_t in, int64_t out, int columns,
                     int64_t panel, float* packed) {
  float* dst = packed + panel * in * columns;
  const int64_t first_row = panel * columns;
  const int64_t whole_k = in / 8 * 8;
  for (int j0 = 0; j0 < columns; j0 += 8) {
    const int64_t rows = Min(8, out - (first_row + j0));
    if (rows == 8) {
      const float* src = w + (first_row + j0) * in;
      for (int64_t k = 0; k < whole_k; k += 8) {
        __m256 block[8];
        for (int r = 0; r < 8; ++r)
          block[r] = _mm256_loadu_ps(src + r * in + k);
        Transpose8x8(block);
        for (int c = 0; c < 8; ++c) {
          _mm256_storeu_ps(dst + (k + c) * columns + j0, block[c]);
        }
      }
    }
    for (int j = j0; j < j0 + 8; ++j) {
      const int64_t row = first_row + j;
      const int64_t k_begin = rows == 8 ? whole_k : 0;
      for (int64_t k = k_begin; k < in; ++k) {
        dst[k * columns + j] = row < out ? w[row * in + k] : 0.0f;
      }
    }
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
  int columns;  // columns of the tile that exist, 1 .. panel_columns
  float* y;
  int64_t ldy;
};

__mmask16 Lanes(int64_t count) {
  if (count <= 0) return 0;
  if (count >= 16) return 0xffff;
  return static_cast<__mmask16>((1u << count) - 1);
}

template <int kRows>
DA_LINEAR_AVX512 void Tile512(const TileArgs& args) {
  const __mmask16 low_lanes = Lanes(args.columns);
  const __mmask16 high_lanes = Lanes(args.columns - 16);
  constexpr int kColumns = 32;  // kAvx512Blocking.panel_columns
  __m512 acc[kRows][2];
  for (int r = 0; r < kRows; ++r) {
    if (args.first) {
      acc[r][0] = _mm512_setzero_ps();
      acc[r][1] = _mm512_setzero_ps();
    } else {
      acc[r][0] = _mm512_maskz_loadu_ps(low_lanes, args.y + r * args.ldy);
      acc[r][1] = _mm512_maskz_loadu_ps(high_lanes, args.y + r * args.ldy + 16);
    }
  }
  const float* x = args.x;
  const float* panel = args.panel;
  for (int64_t k = 0; k < args.depth; ++k) {
    // The panel row 16 products ahead (possibly past the panel: prefetches
    // do not fault): its loads from L2 then do not stall the FMAs.
    _mm_prefetch(reinterpret_cast<const char*>(panel + (k + 16) * kColumns),
                 _MM_HINT_T0);
    _mm_prefetch(
        reinterpret_cast<const char*>(panel + (k + 16) * kColumns + 16),
        _MM_HINT_T0);
    const __m512 b0 = _mm512_loadu_ps(panel + k * kColumns);
    const __m512 b1 = _mm512_loadu_ps(panel + k * kColumns + 16);
    for (int r = 0; r < kRows; ++r) {
      const __m512 a = _mm512_set1_ps(x[r * args.ldx + k]);
      acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
    }
  }
  if (args.last) {
    if (args.bias != nullptr) {
      const __m512 bias0 = _mm512_maskz_loadu_ps(low_lanes, args.bias);
      const __m512 bias1 = _mm512_maskz_loadu_ps(high_lanes, args.bias + 16);
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
    _mm512_mask_storeu_ps(args.y + r * args.ldy, low_lanes, acc[r][0]);
    _mm512_mask_storeu_ps(args.y + r * args.ldy + 16, high_lanes, acc[r][1]);
  }
}

// The AVX2 tile: kRows x 16 outputs in 2 * kRows ymm accumulators, each
// product a broadcast of x times a 16-wide panel row.
template <int kRows>
void Tile256(const TileArgs& args) {
  constexpr int kColumns = 16;  // kAvx2Blocking.panel_columns
  // Twelve accumulators, two panel values and a broadcast fill the 16 ymm
  // registers, so the masks of a partial tile are made only outside the
  // product loop, and the arguments it reads are copied into locals.
  const bool whole = args.columns >= kColumns;
  const int64_t ldx = args.ldx;
  const int64_t ldy = args.ldy;
  const int64_t depth = args.depth;
  __m256 acc[kRows][2];
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r) {
    const float* y = args.y + r * ldy;
    if (args.first) {
      acc[r][0] = _mm256_setzero_ps();
      acc[r][1] = _mm256_setzero_ps();
    } else if (whole) {
      acc[r][0] = _mm256_loadu_ps(y);
      acc[r][1] = _mm256_loadu_ps(y + 8);
    } else {
      acc[r][0] = _mm256_maskload_ps(y, LanesBelow(args.columns));
      acc[r][1] = _mm256_maskload_ps(y + 8, LanesBelow(args.columns - 8));
    }
  }
  const float* x = args.x;
  const float* panel = args.panel;
  for (int64_t k = 0; k < depth; ++k) {
    // A panel row is one cache line; ask for the one 8 products ahead.
    _mm_prefetch(reinterpret_cast<const char*>(panel + (k + 8) * kColumns),
                 _MM_HINT_T0);
    const __m256 b0 = _mm256_loadu_ps(panel + k * kColumns);
    const __m256 b1 = _mm256_loadu_ps(panel + k * kColumns + 8);
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) {
      const __m256 a = _mm256_broadcast_ss(x + r * ldx + k);
      acc[r][0] = _mm256_fmadd_ps(a, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(a, b1, acc[r][1]);
    }
  }
  const __m256i low_mask = LanesBelow(args.columns);
  const __m256i high_mask = LanesBelow(args.columns - 8);
  if (args.last) {
    if (args.bias != nullptr) {
      const __m256 bias0 = _mm256_maskload_ps(args.bias, low_mask);
      const __m256 bias1 = _mm256_maskload_ps(args.bias + 8, high_mask);
#pragma GCC unroll 8
      for (int r = 0; r < kRows; ++r) {
        acc[r][0] = _mm256_add_ps(acc[r][0], bias0);
        acc[r][1] = _mm256_add_ps(acc[r][1], bias1);
      }
    }
    if (args.relu) {
      const __m256 zero = _mm256_setzero_ps();
#pragma GCC unroll 8
      for (int r = 0; r < kRows; ++r) {
        acc[r][0] = _mm256_max_ps(acc[r][0], zero);
        acc[r][1] = _mm256_max_ps(acc[r][1], zero);
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r) {
    float* y = args.y + r * ldy;
    if (whole) {
      _mm256_storeu_ps(y, acc[r][0]);
      _mm256_storeu_ps(y + 8, acc[r][1]);
    } else {
      _mm256_maskstore_ps(y, low_mask, acc[r][0]);
      _mm256_maskstore_ps(y + 8, high_mask, acc[r][1]);
    }
  }
}

using TileFunction = void (*)(const TileArgs&);

// kTiles512[r - 1] and kTiles256[r - 1] compute a tile of r rows.
constexpr TileFunction kTiles512[14] = {
    Tile512<1>,  Tile512<2>,  Tile512<3>,  Tile512<4>, Tile512<5>,
    Tile512<6>,  Tile512<7>,  Tile512<8>,  Tile512<9>, Tile512<10>,
    Tile512<11>, Tile512<12>, Tile512<13>, Tile512<14>};
constexpr TileFunction kTiles256[6] = {Tile256<1>, Tile256<2>, Tile256<3>,
                                       Tile256<4>, Tile256<5>, Tile256<6>};

struct Problem {
  Blocking blocking;
  const TileFunction* tiles;  // tiles[r - 1]: a tile of r rows
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
// every depth block in turn, so that the block's partial sums stay in L2
// between the depth blocks.
void RowBlock(const Problem& p, int64_t row_begin, int64_t row_end) {
  const Blocking& b = p.blocking;
  for (int64_t column_begin = 0; column_begin < p.out;
       column_begin += b.column_block) {
    const int64_t column_end = Min(p.out, column_begin + b.column_block);
    for (int64_t depth_begin = 0; depth_begin < p.in;
         depth_begin += b.depth_block) {
      const int64_t depth = Min(b.depth_block, p.in - depth_begin);
      for (int64_t row = row_begin; row < row_end; row += b.tile_rows) {
        TileArgs args;
        args.x = p.x + row * p.ldx + depth_begin;
        args.ldx = p.ldx;
        args.depth = depth;
        args.first = depth_begin == 0;
        args.last = depth_begin + depth == p.in;
        args.relu = p.epilogue.relu;
        args.ldy = p.ldy;
        const TileFunction tile = p.tiles[Min(b.tile_rows, row_end - row) - 1];
        for (int64_t column = column_begin; column < column_end;
             column += b.panel_columns) {
          args.panel = p.packed +
                       (column / b.panel_columns) * p.in * b.panel_columns +
                       depth_begin * b.panel_columns;
          args.bias =
              p.epilogue.bias == nullptr ? nullptr : p.epilogue.bias + column;
          args.columns =
              static_cast<int>(Min(b.panel_columns, column_end - column));
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
  if (rows < LinearDirectRows(path)) {
    LinearDirect(x, rows, in, ldx, w, out, epilogue, y, ldy);
    return true;
  }
  const MatmulPrecision precision = Float32MatmulPrecision();
  if (path == CpuPath::kAmx && precision != MatmulPrecision::kHighest) {
    LinearGemmAmx(x, rows, in, ldx, w, out, epilogue,
                  precision == MatmulPrecision::kHigh ? 2 : 1, y, ldy);
    return true;
  }
  const bool avx2 = path == CpuPath::kAvx2;
  const Blocking blocking = avx2 ? kAvx2Blocking : kAvx512Blocking;
  const int columns = blocking.panel_columns;
  const int64_t panels = (out + columns - 1) / columns;
  const size_t bytes =
      static_cast<size_t>(panels * in * columns) * sizeof(float);
  std::unique_ptr<float, FreeDeleter> packed(
      static_cast<float*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64)));
  if (packed == nullptr) return false;
  const Problem problem{blocking,
                        avx2 ? kTiles256 : kTiles512,
                        x,
                        rows,
                        in,
                        ldx,
                        packed.get(),
                        out,
                        epilogue,
                        y,
                        ldy};
  const int64_t row_blocks =
      (rows + blocking.row_block - 1) / blocking.row_block;
#pragma omp parallel
  {
#pragma omp for schedule(static)
    for (int64_t panel = 0; panel < panels; ++panel) {
      PackWeightPanel(w, in, out, columns, panel, packed.get());
    }
#pragma omp for schedule(dynamic, 1)
    for (int64_t block = 0; block < row_blocks; ++block) {
      const int64_t begin = block * blocking.row_block;
      RowBlock(problem, begin, Min(rows, begin + blocking.row_block));
    }
  }
  return true;
}

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated
