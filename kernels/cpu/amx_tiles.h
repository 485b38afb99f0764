// File: amx_tiles.h
//
// Building blocks of the AMX kernels (flash_forward_amx.cc,
// tile_gemm_amx.cc): the target attribute that lets a function use AVX-512,
// AVX512-BF16 and AMX in files compiled for x86-64-v3, and small vector
// helpers carrying it. Every function here has that attribute, so that any
// copy the linker keeps is an AMX-path copy, called only where CpuHasAmx()
// (cpu_path.h).

#ifndef KERNELS_CPU_AMX_TILES_H_
#define KERNELS_CPU_AMX_TILES_H_

#include <immintrin.h>

#include <cstdint>

#define DA_AMX_TARGET                                         \
  __attribute__((                                             \
      target("avx512f,avx512dq,avx512bw,avx512vl,avx512bf16," \
             "amx-tile,amx-bf16")))

namespace dilated {
namespace kernels {
namespace cpu {

// Returns the lanes below `count` set (none for count <= 0, all 16 from 16).
DA_AMX_TARGET inline __mmask16 FirstLanes(int64_t count) {
  if (count <= 0) return 0;
  if (count >= 16) return 0xffff;
  return static_cast<__mmask16>((1u << count) - 1);
}

// Returns 16 bfloat16 values widened to float32 (exactly).
DA_AMX_TARGET inline __m512 Widen(__m256i bf16) {
  return _mm512_castsi512_ps(
      _mm512_slli_epi32(_mm512_cvtepu16_epi32(bf16), 16));
}

// Returns x rounded to bfloat16 (to nearest even; subnormals flush to zero).
DA_AMX_TARGET inline __m256i ToBf16(__m512 x) {
  return reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(x));
}

// Transposes the 16 x 16 matrix of 32-bit elements x[row][lane].
DA_AMX_TARGET inline void Transpose16x16(__m512i* x) {
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(x[i], x[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(x[i], x[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    x[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    x[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    x[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    x[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  // x[4b + c] now holds, in its 128-bit lane l, the elements 4l + c of rows
  // 4b .. 4b + 3; a 4 x 4 transpose of 128-bit lanes per c finishes.
  for (int c = 0; c < 4; ++c) {
    const __m512i a0 = _mm512_shuffle_i32x4(x[c], x[4 + c], 0x44);
    const __m512i a1 = _mm512_shuffle_i32x4(x[c], x[4 + c], 0xee);
    const __m512i a2 = _mm512_shuffle_i32x4(x[8 + c], x[12 + c], 0x44);
    const __m512i a3 = _mm512_shuffle_i32x4(x[8 + c], x[12 + c], 0xee);
    t[c] = _mm512_shuffle_i32x4(a0, a2, 0x88);
    t[4 + c] = _mm512_shuffle_i32x4(a0, a2, 0xdd);
    t[8 + c] = _mm512_shuffle_i32x4(a1, a3, 0x88);
    t[12 + c] = _mm512_shuffle_i32x4(a1, a3, 0xdd);
  }
  for (int i = 0; i < 16; ++i) x[i] = t[i];
}

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CPU_AMX_TILES_H_
