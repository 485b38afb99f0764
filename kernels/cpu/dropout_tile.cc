#include "kernels/cpu/dropout_tile.h"

#include <immintrin.h>

#include "kernels/cpu/cpu_path.h"

// Only the functions marked so use AVX-512, and only when cpu_path.h reports
// it; the rest of the file keeps the library's baseline instruction set.
#define DA_DROPOUT_AVX512 \
  __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl")))

namespace dilated {
namespace kernels {
namespace cpu {
namespace {

// Eight Philox4x32-10 blocks at once (AVX2), lane l computing
// Philox4x32_10(counter of lane l, key): the same function as
// kernels/dropout_rng.h, bit for bit.
struct PhiloxLanes {
  __m256i word[4];
};

// Returns the high and low 32 bits of the products of every lane of x by m.
inline void MultiplyHighLow(__m256i x, __m256i m, __m256i* high, __m256i* low) {
  const __m256i even = _mm256_mul_epu32(x, m);
  const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(x, 32), m);
  *low = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
  *high = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
}

PhiloxLanes Philox8(PhiloxLanes c, uint32_t key0, uint32_t key1) {
  const __m256i multiplier0 = _mm256_set1_epi32(static_cast<int>(0xD2511F53u));
  const __m256i multiplier1 = _mm256_set1_epi32(static_cast<int>(0xCD9E8D57u));
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      key0 += 0x9E3779B9u;
      key1 += 0xBB67AE85u;
    }
    __m256i high0, low0, high1, low1;
    MultiplyHighLow(c.word[0], multiplier0, &high0, &low0);
    MultiplyHighLow(c.word[2], multiplier1, &high1, &low1);
    const __m256i next0 =
        _mm256_xor_si256(_mm256_xor_si256(high1, c.word[1]),
                         _mm256_set1_epi32(static_cast<int>(key0)));
    const __m256i next2 =
        _mm256_xor_si256(_mm256_xor_si256(high0, c.word[3]),
                         _mm256_set1_epi32(static_cast<int>(key1)));
    c.word[0] = next0;
    c.word[1] = low1;
    c.word[2] = next2;
    c.word[3] = low0;
  }
  return c;
}

// Writes the factors of query rows i0 .. i0 + 7 of problem s (rows from
// `rows` on get 0) for key rows j0 .. j0 + keys - 1: one Philox call per lane
// and block of 4 key positions, reused while the keys stay in the block.
void FillEightQueries(const ForwardParams& p, const Segment& s, int64_t i0,
                      int64_t rows, int64_t j0, int64_t keys,
                      const DropoutTileLayout& layout, float* tile) {
  const Problem& problem = *s.problem;
  const DropoutParams& d = p.dropout;
  const uint64_t stream = d.offset +
                          static_cast<uint64_t>(problem.b) * p.num_heads +
                          static_cast<uint64_t>(s.head);
  alignas(32) int32_t queries[8];
  for (int l = 0; l < 8; ++l) {
    queries[l] = l < rows ? static_cast<int32_t>(problem.Position(i0 + l)) : 0;
  }
  PhiloxLanes counter;
  counter.word[1] =
      _mm256_load_si256(reinterpret_cast<const __m256i*>(queries));
  counter.word[2] = _mm256_set1_epi32(static_cast<int32_t>(stream));
  counter.word[3] = _mm256_set1_epi32(static_cast<int32_t>(stream >> 32));
  // bits < threshold (unsigned) as a signed comparison of both sides
  // offset by 2^31.
  const __m256i sign = _mm256_set1_epi32(static_cast<int>(0x80000000u));
  const __m256i threshold = _mm256_xor_si256(
      _mm256_set1_epi32(static_cast<int>(d.drop_threshold)), sign);
  const __m256 keep_scale = _mm256_set1_ps(d.keep_scale);
  const __m256 live = _mm256_castsi256_ps(_mm256_cmpgt_epi32(
      _mm256_set1_epi32(static_cast<int32_t>(rows < 8 ? rows : 8)),
      _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
  int64_t block_index = -1;
  PhiloxLanes block{};
  alignas(32) float factors[8];
  for (int64_t j = 0; j < keys; ++j) {
    const int64_t key = problem.Position(j0 + j);
    if ((key >> 2) != block_index) {
      block_index = key >> 2;
      counter.word[0] = _mm256_set1_epi32(static_cast<int32_t>(key >> 2));
      block = Philox8(counter, static_cast<uint32_t>(d.seed),
                      static_cast<uint32_t>(d.seed >> 32));
    }
    const __m256i dropped = _mm256_cmpgt_epi32(
        threshold, _mm256_xor_si256(block.word[key & 3], sign));
    const __m256 factor = _mm256_and_ps(
        live, _mm256_andnot_ps(_mm256_castsi256_ps(dropped), keep_scale));
    float* column = tile + j * layout.key_stride;
    if (layout.query_stride == 1) {
      _mm256_storeu_ps(column, factor);
      continue;
    }
    _mm256_store_ps(factors, factor);
    for (int l = 0; l < 8; ++l) column[l * layout.query_stride] = factors[l];
  }
}

// The sixteen-lane (AVX-512) twins of PhiloxLanes, Philox8 and
// FillEightQueries: the same function, bit for bit, twice the lanes.
struct PhiloxLanes16 {
  __m512i word[4];
};

DA_DROPOUT_AVX512 inline void MultiplyHighLow16(__m512i x, __m512i m,
                                                __m512i* high, __m512i* low) {
  const __m512i even = _mm512_mul_epu32(x, m);
  const __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(x, 32), m);
  *low = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
  *high = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
}

DA_DROPOUT_AVX512 PhiloxLanes16 Philox16(PhiloxLanes16 c, uint32_t key0,
                                         uint32_t key1) {
  const __m512i multiplier0 = _mm512_set1_epi32(static_cast<int>(0xD2511F53u));
  const __m512i multiplier1 = _mm512_set1_epi32(static_cast<int>(0xCD9E8D57u));
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      key0 += 0x9E3779B9u;
      key1 += 0xBB67AE85u;
    }
    __m512i high0, low0, high1, low1;
    MultiplyHighLow16(c.word[0], multiplier0, &high0, &low0);
    MultiplyHighLow16(c.word[2], multiplier1, &high1, &low1);
    const __m512i next0 =
        _mm512_xor_si512(_mm512_xor_si512(high1, c.word[1]),
                         _mm512_set1_epi32(static_cast<int>(key0)));
    const __m512i next2 =
        _mm512_xor_si512(_mm512_xor_si512(high0, c.word[3]),
                         _mm512_set1_epi32(static_cast<int>(key1)));
    c.word[0] = next0;
    c.word[1] = low1;
    c.word[2] = next2;
    c.word[3] = low0;
  }
  return c;
}

// As FillEightQueries for query rows i0 .. i0 + 15.
// REQUIRES: the layout has 16 rows from i0 on.
DA_DROPOUT_AVX512 void FillSixteenQueries(
    const ForwardParams& p, const Segment& s, int64_t i0, int64_t rows,
    int64_t j0, int64_t keys, const DropoutTileLayout& layout, float* tile) {
  const Problem& problem = *s.problem;
  const DropoutParams& d = p.dropout;
  const uint64_t stream = d.offset +
                          static_cast<uint64_t>(problem.b) * p.num_heads +
                          static_cast<uint64_t>(s.head);
  alignas(64) int32_t queries[16];
  for (int l = 0; l < 16; ++l) {
    queries[l] = l < rows ? static_cast<int32_t>(problem.Position(i0 + l)) : 0;
  }
  PhiloxLanes16 counter;
  counter.word[1] = _mm512_load_si512(queries);
  counter.word[2] = _mm512_set1_epi32(static_cast<int32_t>(stream));
  counter.word[3] = _mm512_set1_epi32(static_cast<int32_t>(stream >> 32));
  const __m512i threshold =
      _mm512_set1_epi32(static_cast<int>(d.drop_threshold));
  const __m512 keep_scale = _mm512_set1_ps(d.keep_scale);
  const __mmask16 live = rows <= 0 ? static_cast<__mmask16>(0)
                         : rows >= 16
                             ? static_cast<__mmask16>(0xFFFF)
                             : static_cast<__mmask16>((1u << rows) - 1);
  int64_t block_index = -1;
  PhiloxLanes16 block{};
  alignas(64) float factors[16];
  for (int64_t j = 0; j < keys; ++j) {
    const int64_t key = problem.Position(j0 + j);
    if ((key >> 2) != block_index) {
      block_index = key >> 2;
      counter.word[0] = _mm512_set1_epi32(static_cast<int32_t>(key >> 2));
      block = Philox16(counter, static_cast<uint32_t>(d.seed),
                       static_cast<uint32_t>(d.seed >> 32));
    }
    const __mmask16 kept =
        live & _mm512_cmpge_epu32_mask(block.word[key & 3], threshold);
    const __m512 factor = _mm512_maskz_mov_ps(kept, keep_scale);
    float* column = tile + j * layout.key_stride;
    if (layout.query_stride == 1) {
      _mm512_storeu_ps(column, factor);
      continue;
    }
    _mm512_store_ps(factors, factor);
    for (int l = 0; l < 16; ++l) column[l * layout.query_stride] = factors[l];
  }
}

}  // namespace

void FillDropoutTile(const ForwardParams& p, const Segment& s, int64_t i0,
                     int64_t rows, int64_t j0, int64_t keys,
                     const DropoutTileLayout& layout, float* tile) {
  for (int64_t i = 0; i < layout.row_extent; ++i) {
    float* row = tile + i * layout.query_stride;
    for (int64_t j = keys; j < layout.key_extent; ++j) {
      row[j * layout.key_stride] = 0.0f;
    }
  }
  const bool sixteen_lanes = ActiveCpuPath() != CpuPath::kAvx2;
  for (int64_t i = 0; i < layout.row_extent;) {
    if (sixteen_lanes && layout.row_extent - i >= 16) {
      FillSixteenQueries(p, s, i0 + i, rows - i, j0, keys, layout,
                         tile + i * layout.query_stride);
      i += 16;
    } else {
      FillEightQueries(p, s, i0 + i, rows - i, j0, keys, layout,
                       tile + i * layout.query_stride);
      i += 8;
    }
  }
}

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated
