// The forward pass on AMX (flash_amx.h): per work unit of up to 64 query
// blocks of 32 rows (a whole problem of 2,048 rows at head_dim 64), a walk
// over key tiles of 64 keys; each key tile is packed once for all blocks of
// the unit, so that k and v are read once per unit.
//
// Here queries are the rows of every tile (S = Q K^T is queries x keys), as
// the AMX products want: the A operand of a tile product is row-major, the B
// operand holds pairs of consecutive reduction elements side by side (the
// "VNNI" layout). K^T in that layout is k's rows cut into 32-bit pairs and
// transposed; V in it interleaves pairs of key rows. The softmax walks the
// score rows with 16-lane vectors and writes P row-major, which is the A
// operand of P V as it stands.
//
// The file is compiled for x86-64-v3 like the rest of the library; only the
// functions marked DA_AMX_TARGET (amx_tiles.h) use AVX-512 and AMX, and they
// are called only when CpuHasAmx(). Shared inline code (flash_common.h) is
// thus compiled for x86-64-v3 here as everywhere else.

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "kernels/cpu/amx_tiles.h"
#include "kernels/cpu/dropout_tile.h"
#include "kernels/cpu/flash_amx.h"
#include "kernels/cpu/flash_common.h"

// 2^x for 16 lanes (AVX-512F), the exponential of the other AVX-512 code.
#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl")
#include "kernels/cpu/simd_exp_avx512.h"
#pragma GCC pop_options

namespace dilated {
namespace kernels {
namespace cpu {
namespace {

// 32 queries x 64 keys: a score tile is 2 x 4 AMX tiles of 16 x 16 floats,
// computed in halves of 32 keys (four accumulators, two A and two B tiles:
// the eight tile registers). With 64 keys the tiles one block and key tile
// touch (K^T, V, S, P, q and O: 40 KiB at head_dim 64) stay in a 48 KiB L1;
// 128 keys halve the output-tile traffic per key but, at 68 KiB, ran 10%
// slower.
constexpr int64_t kBlockQ = 32;
constexpr int64_t kBlockK = 64;
// Keys (and dims) per reduction step of a tile product: 16 pairs.
constexpr int64_t kChunk = 32;
// Query blocks of one work unit: each key tile is packed once for all of
// them, as in flash_forward.cc. Their q, output and sum tiles are held to
// 1 MiB: 64 blocks (2,048 rows) at head_dim 64 in bfloat16, fewer for wider
// heads and float16.
constexpr int64_t kMaxBlocks = 64;
constexpr int64_t kUnitTileBytes = 1024 * 1024;
// A tile's max may exceed the running max by this much (log2 units) before
// the running max moves: probabilities up to 2^8, far from overflow, and
// fewer rescalings of the output rows.
constexpr float kMaxSlack = 8.0f;

int64_t RoundUp(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Returns the query blocks of a work unit for `head_dim` and `dtype`.
int64_t BlocksPerUnit(int64_t head_dim, DataType dtype) {
  const int64_t dp = RoundUp(head_dim, kChunk);
  const int64_t per_block =
      kBlockQ * (dp * 2 * PlanesOf(dtype) + dp * 4 + 17 * 4);
  return std::max<int64_t>(
      1, std::min<int64_t>(kMaxBlocks, kUnitTileBytes / per_block));
}

struct Block {
  int64_t i0 = 0;
  int64_t rows = 0;
  int64_t key_end = 0;
  uint16_t* q[2] = {nullptr, nullptr};  // Planes of kBlockQ x dp, row-major.
  float* o = nullptr;                   // kBlockQ x dp, unnormalised.
  float* row_max = nullptr;             // kBlockQ, base-2 scores.
  // kBlockQ x 16 lane-wise partial sums of 2^(score - row_max); a row's sum
  // is the sum of its 16, taken once at the end.
  float* row_sum = nullptr;
};

// One thread's tiles; 16-bit arrays are carved as floats (two per float).
struct Scratch {
  Scratch(int64_t head_dim, DataType dtype, bool dropout, Carver* carver)
      : dp(RoundUp(head_dim, kChunk)),
        planes(PlanesOf(dtype)),
        num_blocks(BlocksPerUnit(head_dim, dtype)) {
    for (int64_t b = 0; b < num_blocks; ++b) {
      for (int64_t pl = 0; pl < planes; ++pl) {
        blocks[b].q[pl] =
            reinterpret_cast<uint16_t*>(carver->Take(kBlockQ * dp / 2));
      }
      blocks[b].o = carver->Take(kBlockQ * dp);
      blocks[b].row_max = carver->Take(kBlockQ);
      blocks[b].row_sum = carver->Take(kBlockQ * 16);
    }
    for (int64_t pl = 0; pl < planes; ++pl) {
      kt[pl] = reinterpret_cast<uint32_t*>(carver->Take(dp / 2 * kBlockK));
      v[pl] = reinterpret_cast<uint32_t*>(carver->Take(kBlockK / 2 * dp));
      p[pl] = reinterpret_cast<uint16_t*>(carver->Take(kBlockQ * kBlockK / 2));
      staged_k[pl] =
          reinterpret_cast<uint16_t*>(carver->Take(kBlockK * dp / 2));
      staged_v[pl] =
          reinterpret_cast<uint16_t*>(carver->Take(kBlockK * dp / 2));
    }
    s = carver->Take(kBlockQ * kBlockK);
    dropout_factors = dropout ? carver->Take(kBlockQ * kBlockK) : nullptr;
  }

  int64_t dp;      // head_dim rounded up to kChunk (zero padded).
  int64_t planes;  // 1 (bfloat16) or 2 (float16).
  int64_t num_blocks;
  Block blocks[kMaxBlocks];
  // Per plane: K^T of the key tile as dp / 2 x kBlockK pairs, V as
  // kBlockK / 2 x dp pairs, P as kBlockQ x kBlockK, and k and v rows on
  // their way into K^T and V (kBlockK x dp).
  uint32_t* kt[2] = {nullptr, nullptr};
  uint32_t* v[2] = {nullptr, nullptr};
  uint16_t* p[2] = {nullptr, nullptr};
  uint16_t* staged_k[2] = {nullptr, nullptr};
  uint16_t* staged_v[2] = {nullptr, nullptr};
  float* s;  // kBlockQ x kBlockK scores.
  // kBlockQ x kBlockK dropout factors of one block and key tile, or null
  // without dropout.
  float* dropout_factors;
};

// Flips the sign of dp 16-bit floating-point values, exactly.
// REQUIRES: dp % 32 == 0.
DA_AMX_TARGET void NegateRow(uint16_t* row, int64_t dp) {
  const __m512i sign = _mm512_set1_epi16(static_cast<int16_t>(0x8000));
  for (int64_t a = 0; a < dp; a += 32) {
    _mm512_storeu_si512(row + a,
                        _mm512_xor_si512(_mm512_loadu_si512(row + a), sign));
  }
}

// Packs the rows of `block` of q into its planes, negated where
// softmax_scale is negative (for Softmax), rows past block->rows zero.
DA_AMX_TARGET void PackQueries(const ForwardParams& p, const Segment& s,
                               int64_t dp, Block* block) {
  for (int64_t i = 0; i < kBlockQ; ++i) {
    uint16_t* hi = block->q[0] + i * dp;
    uint16_t* lo = block->q[1] == nullptr ? nullptr : block->q[1] + i * dp;
    if (i >= block->rows) {
      std::memset(hi, 0, dp * sizeof(uint16_t));
      if (lo != nullptr) std::memset(lo, 0, dp * sizeof(uint16_t));
      continue;
    }
    StageRow(SegmentRow(p.q, p.dtype, s, block->i0 + i), p.dtype, p.head_dim,
             dp, hi, lo);
    if (p.softmax_scale < 0) {
      NegateRow(hi, dp);
      if (lo != nullptr) NegateRow(lo, dp);
    }
  }
}

// Asks for the rows of `block` in t (q, or out before it is written) to be
// brought into L2, a block's computation ahead of their use: strided rows
// asked for in a burst right before use wait for memory one after another.
DA_AMX_TARGET void PrefetchBlockRows(const TensorParams& t,
                                     const ForwardParams& p, const Segment& s,
                                     const Block& block) {
  for (int64_t i = 0; i < block.rows; ++i) {
    PrefetchRow<_MM_HINT_T1>(t, p.dtype, p.head_dim, s, block.i0 + i);
  }
}

// Packs key rows j0 .. j0 + keys - 1 of k (as K^T pairs) and v (as pairs of
// key rows) into the scratch planes; keys past `keys` are zero.
DA_AMX_TARGET void PackKeyTile(const ForwardParams& p, const Segment& s,
                               int64_t j0, int64_t keys, Scratch* scratch) {
  const int64_t dp = scratch->dp;
  for (int64_t j = 0; j < kBlockK; ++j) {
    if (j + kRowsAhead < keys) {
      PrefetchRow<_MM_HINT_T0>(p.k, p.dtype, p.head_dim, s,
                               j0 + j + kRowsAhead);
      PrefetchRow<_MM_HINT_T0>(p.v, p.dtype, p.head_dim, s,
                               j0 + j + kRowsAhead);
    }
    uint16_t* k_lo =
        scratch->planes > 1 ? scratch->staged_k[1] + j * dp : nullptr;
    uint16_t* v_lo =
        scratch->planes > 1 ? scratch->staged_v[1] + j * dp : nullptr;
    if (j < keys) {
      StageRow(SegmentRow(p.k, p.dtype, s, j0 + j), p.dtype, p.head_dim, dp,
               scratch->staged_k[0] + j * dp, k_lo);
      StageRow(SegmentRow(p.v, p.dtype, s, j0 + j), p.dtype, p.head_dim, dp,
               scratch->staged_v[0] + j * dp, v_lo);
    } else {
      for (int64_t pl = 0; pl < scratch->planes; ++pl) {
        std::memset(scratch->staged_k[pl] + j * dp, 0, dp * sizeof(uint16_t));
        std::memset(scratch->staged_v[pl] + j * dp, 0, dp * sizeof(uint16_t));
      }
    }
  }
  for (int64_t pl = 0; pl < scratch->planes; ++pl) {
    TransposePairs(scratch->staged_k[pl], kBlockK, dp, scratch->kt[pl],
                   kBlockK);
    InterleaveRowPairs(scratch->staged_v[pl], kBlockK, dp, scratch->v[pl]);
  }
}

// S[:, 32h .. 32h + 31] = Q K^T for key chunk h of the tile (32 keys).
DA_AMX_TARGET void Scores(const Scratch& scratch, const ProductTerms& terms,
                          const Block& block, int64_t h) {
  const int64_t dp = scratch.dp;
  const int64_t q_stride = dp * sizeof(uint16_t);
  const int64_t kt_stride = kBlockK * sizeof(uint32_t);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (int t = 0; t < terms.count; ++t) {
    const uint16_t* q = block.q[terms.a[t]];
    const uint32_t* kt = scratch.kt[terms.b[t]] + h * kChunk;
    for (int64_t c = 0; c < dp; c += kChunk) {
      _tile_loadd(4, q + c, q_stride);
      _tile_loadd(5, q + 16 * dp + c, q_stride);
      _tile_loadd(6, kt + c / 2 * kBlockK, kt_stride);
      _tile_loadd(7, kt + c / 2 * kBlockK + 16, kt_stride);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
  }
  float* s = scratch.s + h * kChunk;
  const int64_t s_stride = kBlockK * sizeof(float);
  _tile_stored(0, s, s_stride);
  _tile_stored(1, s + 16, s_stride);
  _tile_stored(2, s + 16 * kBlockK, s_stride);
  _tile_stored(3, s + 16 * kBlockK + 16, s_stride);
}

// O[:, 32c .. 32c + 31] += P V over the first `chunks` key chunks of 32.
DA_AMX_TARGET void AccumulateOutput(const Scratch& scratch,
                                    const ProductTerms& terms, int64_t chunks,
                                    Block* block) {
  const int64_t dp = scratch.dp;
  const int64_t o_stride = dp * sizeof(float);
  const int64_t p_stride = kBlockK * sizeof(uint16_t);
  const int64_t v_stride = dp * sizeof(uint32_t);
  for (int64_t c = 0; c < dp; c += kChunk) {
    float* o = block->o + c;
    _tile_loadd(0, o, o_stride);
    _tile_loadd(1, o + 16, o_stride);
    _tile_loadd(2, o + 16 * dp, o_stride);
    _tile_loadd(3, o + 16 * dp + 16, o_stride);
    for (int t = 0; t < terms.count; ++t) {
      const uint16_t* p = scratch.p[terms.a[t]];
      const uint32_t* v = scratch.v[terms.b[t]] + c;
      for (int64_t h = 0; h < chunks; ++h) {
        _tile_loadd(4, p + h * kChunk, p_stride);
        _tile_loadd(5, p + 16 * kBlockK + h * kChunk, p_stride);
        _tile_loadd(6, v + h * 16 * dp, v_stride);
        _tile_loadd(7, v + h * 16 * dp + 16, v_stride);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
      }
    }
    _tile_stored(0, o, o_stride);
    _tile_stored(1, o + 16, o_stride);
    _tile_stored(2, o + 16 * dp, o_stride);
    _tile_stored(3, o + 16 * dp + 16, o_stride);
  }
}

// Stores the bfloat16 roundings of 32 probabilities (lanes of p0, then of
// p1) at hi and, with lo, the remainders at lo.
DA_AMX_TARGET void StoreProbabilities(__m512 p0, __m512 p1, uint16_t* hi,
                                      uint16_t* lo) {
  const __m512i high = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(p1, p0));
  _mm512_storeu_si512(hi, high);
  if (lo == nullptr) return;
  const __m512 rest0 = _mm512_sub_ps(p0, Widen(_mm512_castsi512_si256(high)));
  const __m512 rest1 =
      _mm512_sub_ps(p1, Widen(_mm512_extracti64x4_epi64(high, 1)));
  _mm512_storeu_si512(
      lo, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(rest1, rest0)));
}

// Turns the scores of the first `chunks` key chunks into P (every plane),
// updating the block's running max and sum and rescaling output rows whose
// max moves. Keys at or past `keys`, and under a causal mask keys after
// their query, get probability 0. With dropout (kDropout), P is multiplied by
// the factors in scratch->dropout_factors after it enters the sums.
//
// The scores are those of q packed with the sign of softmax_scale
// (PackQueries), so that the largest score is also the largest after
// scaling: the max is taken of the raw scores, and the scale enters the
// exponent's fused multiply-add.
template <bool kDropout>
DA_AMX_TARGET void Softmax(const ForwardParams& p, int64_t j0, int64_t keys,
                           int64_t chunks, Scratch* scratch, Block* block) {
  const int64_t dp = scratch->dp;
  const int64_t vectors = chunks * 2;
  const float scale_value = std::fabs(p.softmax_scale) * kLog2e;
  const __m512 scale = _mm512_set1_ps(scale_value);
  const __m512 minus_inf =
      _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t r = 0; r < kBlockQ; ++r) {
    const int64_t visible =
        p.is_causal ? std::min(keys, block->i0 + r - j0 + 1) : keys;
    uint16_t* hi = scratch->p[0] + r * kBlockK;
    uint16_t* lo = scratch->planes > 1 ? scratch->p[1] + r * kBlockK : nullptr;
    if (visible <= 0) {
      std::memset(hi, 0, kBlockK * sizeof(uint16_t));
      if (lo != nullptr) std::memset(lo, 0, kBlockK * sizeof(uint16_t));
      continue;
    }
    const float* s = scratch->s + r * kBlockK;
    const int64_t whole = visible / 16;
    __m512 raw_max = minus_inf;
    for (int64_t v = 0; v < whole; ++v) {
      raw_max = _mm512_max_ps(raw_max, _mm512_loadu_ps(s + 16 * v));
    }
    if (whole < vectors) {
      raw_max = _mm512_mask_max_ps(raw_max, FirstLanes(visible - 16 * whole),
                                   raw_max, _mm512_loadu_ps(s + 16 * whole));
    }
    const __m512 tile_max = _mm512_mul_ps(raw_max, scale);
    float* row_sum = block->row_sum + 16 * r;
    float ref = block->row_max[r];
    if (ref == -std::numeric_limits<float>::infinity() ||
        _mm512_cmp_ps_mask(tile_max, _mm512_set1_ps(ref + kMaxSlack),
                           _CMP_GT_OQ) != 0) {
      // First keys of the row, or a max far above the reference: move it.
      const float m = _mm512_reduce_max_ps(tile_max);
      const __m512 alpha = _mm512_set1_ps(
          ref == -std::numeric_limits<float>::infinity() ? 0.0f
                                                         : std::exp2(ref - m));
      _mm512_storeu_ps(row_sum, _mm512_mul_ps(_mm512_loadu_ps(row_sum), alpha));
      float* o = block->o + r * dp;
      for (int64_t c = 0; c < dp; c += 16) {
        _mm512_storeu_ps(o + c, _mm512_mul_ps(_mm512_loadu_ps(o + c), alpha));
      }
      ref = m;
      block->row_max[r] = m;
    }
    const __m512 minus_ref = _mm512_set1_ps(-ref);
    __m512 sum = _mm512_loadu_ps(row_sum);
    const float* factors =
        kDropout ? scratch->dropout_factors + r * kBlockK : nullptr;
    for (int64_t v = 0; v < vectors; v += 2) {
      __m512 p0 = Exp2x16Coarse(
          _mm512_fmadd_ps(_mm512_loadu_ps(s + 16 * v), scale, minus_ref));
      __m512 p1 = Exp2x16Coarse(
          _mm512_fmadd_ps(_mm512_loadu_ps(s + 16 * v + 16), scale, minus_ref));
      if (16 * (v + 2) > visible) {
        p0 = _mm512_maskz_mov_ps(FirstLanes(visible - 16 * v), p0);
        p1 = _mm512_maskz_mov_ps(FirstLanes(visible - 16 * v - 16), p1);
      }
      sum = _mm512_add_ps(sum, _mm512_add_ps(p0, p1));
      if constexpr (kDropout) {
        p0 = _mm512_mul_ps(p0, _mm512_loadu_ps(factors + 16 * v));
        p1 = _mm512_mul_ps(p1, _mm512_loadu_ps(factors + 16 * v + 16));
      }
      StoreProbabilities(p0, p1, hi + 16 * v,
                         lo == nullptr ? nullptr : lo + 16 * v);
    }
    _mm512_storeu_ps(row_sum, sum);
  }
}

// Normalises `block`, applies 1/G and stores its rows of out; writes
// lse = ln 2 * (max + log2(sum)).
DA_AMX_TARGET void StoreBlock(const ForwardParams& p, const Segment& s,
                              int64_t dp, const Block& block) {
  float* lse_row = LseRow(p, s);
  const int64_t d = p.head_dim;
  for (int64_t r = 0; r < block.rows; ++r) {
    const int64_t i = block.i0 + r;
    if (r + kRowsAhead < block.rows) {
      PrefetchRow<_MM_HINT_T0>(p.out, p.dtype, d, s, i + kRowsAhead);
    }
    const float sum =
        _mm512_reduce_add_ps(_mm512_loadu_ps(block.row_sum + 16 * r));
    StoreScaledRow(block.o + r * dp, p.output_scale / sum, p.dtype, d,
                   SegmentRow(p.out, p.dtype, s, i));
    if (lse_row != nullptr) {
      lse_row[s.problem->Position(i)] =
          (block.row_max[r] + std::log2(sum)) * kLn2;
    }
  }
}

// Computes the rows of `unit` of problem s into out (and lse), and zeroes the
// unselected positions that follow them.
DA_AMX_TARGET void ForwardUnit(const ForwardParams& p, const Segment& s,
                               int64_t unit, Scratch* scratch) {
  const int64_t length = s.problem->length;
  const int64_t unit_rows = kBlockQ * scratch->num_blocks;
  const int64_t unit_begin = unit * unit_rows;
  const int64_t unit_end = std::min(length, unit_begin + unit_rows);
  ZeroUnselected(p.out, p.dtype, p.head_dim, s, unit_begin,
                 std::max(unit_begin, unit_end), LseRow(p, s));
  if (unit_end <= unit_begin) return;
  const int64_t dp = scratch->dp;
  const ProductTerms terms = ProductTermsOf(p.dtype);

  int64_t num_blocks = 0;
  int64_t key_end = 0;
  for (int64_t i0 = unit_begin; i0 < unit_end; i0 += kBlockQ) {
    Block& block = scratch->blocks[num_blocks++];
    block.i0 = i0;
    block.rows = std::min(kBlockQ, unit_end - i0);
    // Causal: keys up to the block's last query; later tiles are skipped.
    block.key_end = p.is_causal ? i0 + block.rows : length;
    key_end = std::max(key_end, block.key_end);
  }

  // Memory traffic is spread over the arithmetic: q rows are packed in the
  // first key tile, each block's asked for during the block before; the out
  // rows of a block are written in its last key tile, asked for likewise;
  // and the next key tile's rows are asked for in slices, one per block.
  PrefetchBlockRows(p.q, p, s, scratch->blocks[0]);
  for (int64_t j0 = 0; j0 < key_end; j0 += kBlockK) {
    const int64_t keys = std::min(kBlockK, key_end - j0);
    PackKeyTile(p, s, j0, keys, scratch);
    const int64_t next_end = std::min(key_end, j0 + 2 * kBlockK);
    const int64_t slice = (kBlockK + num_blocks - 1) / num_blocks;
    for (int64_t b = 0; b < num_blocks; ++b) {
      const int64_t prefetch_begin = j0 + kBlockK + b * slice;
      for (int64_t j = prefetch_begin;
           j < std::min(next_end, prefetch_begin + slice); ++j) {
        PrefetchRow<_MM_HINT_T1>(p.k, p.dtype, p.head_dim, s, j);
        PrefetchRow<_MM_HINT_T1>(p.v, p.dtype, p.head_dim, s, j);
      }
      Block& block = scratch->blocks[b];
      const Block* next =
          b + 1 < num_blocks ? &scratch->blocks[b + 1] : nullptr;
      if (j0 == 0) {
        if (next != nullptr) PrefetchBlockRows(p.q, p, s, *next);
        PackQueries(p, s, dp, &block);
        std::fill(block.o, block.o + kBlockQ * dp, 0.0f);
        std::fill(block.row_max, block.row_max + kBlockQ,
                  -std::numeric_limits<float>::infinity());
        std::fill(block.row_sum, block.row_sum + kBlockQ * 16, 0.0f);
      }
      if (j0 >= block.key_end) continue;
      const bool last_tile = j0 + kBlockK >= block.key_end;
      if (last_tile && next != nullptr) {
        PrefetchBlockRows(p.out, p, s, *next);
      }
      const int64_t block_keys = std::min(keys, block.key_end - j0);
      const int64_t chunks = (block_keys + kChunk - 1) / kChunk;
      if (p.dropout.enabled) {
        FillDropoutTile(p, s, block.i0, block.rows, j0, block_keys,
                        {kBlockQ, kBlockK, kBlockK, 1},
                        scratch->dropout_factors);
      }
      for (int64_t h = 0; h < chunks; ++h) Scores(*scratch, terms, block, h);
      if (p.dropout.enabled) {
        Softmax<true>(p, j0, block_keys, chunks, scratch, &block);
      } else {
        Softmax<false>(p, j0, block_keys, chunks, scratch, &block);
      }
      AccumulateOutput(*scratch, terms, chunks, &block);
      if (last_tile) StoreBlock(p, s, dp, block);
    }
  }
}

}  // namespace

int64_t FlashForwardAmxWorkspacePerThread(const ForwardParams& p) {
  Carver counter(nullptr);
  Scratch layout(p.head_dim, p.dtype, p.dropout.enabled, &counter);
  return counter.used();
}

void FlashForwardAmx(const ForwardParams& p, float* workspace,
                     int num_threads) {
  const ProblemList problems(p);
  const WorkList work(problems, kBlockQ * BlocksPerUnit(p.head_dim, p.dtype));
  const int64_t per_thread = FlashForwardAmxWorkspacePerThread(p);
#pragma omp parallel num_threads(num_threads)
  {
    Carver carver(workspace + omp_get_thread_num() * per_thread);
    Scratch scratch(p.head_dim, p.dtype, p.dropout.enabled, &carver);
    AmxBeginThread();
#pragma omp for schedule(dynamic, 1)
    for (int64_t index = 0; index < work.size(); ++index) {
      int64_t unit;
      const Segment s = work.Decode(index, &unit);
      ForwardUnit(p, s, unit, &scratch);
    }
    AmxEndThread();
  }
}

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated
