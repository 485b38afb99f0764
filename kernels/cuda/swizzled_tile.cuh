// File: swizzled_tile.cuh
//
// Shared-memory tiles in the 128-byte-swizzled layout of wgmma.cuh (rows of
// 64 16-bit elements; row r's 16-byte chunk c at r * 128 + ((c ^ (r % 8)) *
// 16) of a 1024-byte aligned base): the asynchronous loader of selected rows
// and the double-buffered K/V step built on it, and the per-warp staging of
// 16 accumulator rows for 16-byte global stores (the kernels' epilogue).
// The XOR keeps both the loader's and the stager's accesses free of bank
// conflicts.

#ifndef KERNELS_CUDA_SWIZZLED_TILE_CUH_
#define KERNELS_CUDA_SWIZZLED_TILE_CUH_

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/device_primitives.cuh"
#include "kernels/cuda/wgmma.cuh"
#include "kernels/dilated_params.h"

namespace dilated {
namespace kernels {
namespace gpu {

// Returns the 1024-byte aligned start of the dynamic shared memory (the
// kernels reserve 1024 bytes of slack for it).
__device__ __forceinline__ unsigned char* AlignedSharedBase(
    unsigned char* raw) {
  return raw + ((1024 - (SharedAddress(raw) & 1023)) & 1023);
}

// Returns the shared address of the last 16 bytes of a dynamic allocation of
// `total` bytes at `raw` (16-byte aligned) whose last 1024 are the slack
// AlignedSharedBase consumes: it takes at most 1008 of them, so these 16 are
// never part of the aligned region. Kernels whose blocks fill an SM exactly
// keep their mbarriers there, where static shared memory would cost a block.
__device__ __forceinline__ uint32_t SlackTail(unsigned char* raw,
                                              size_t total) {
  return SharedAddress(raw) + static_cast<uint32_t>(total) - 16;
}

// Returns the byte offset of 16-byte chunk `chunk` of row `row`.
__device__ __forceinline__ int SwizzledOffset(int row, int chunk) {
  return row * 128 + ((chunk ^ (row & 7)) << 4);
}

// Starts cp.async copies of selected rows [first, first + kRows) of 64
// columns into a 128-byte-swizzled tile at shared address `tile` (1024-byte
// aligned). Rows >= limit and 16-byte chunks >= `chunks` are zero-filled.
// All kThreads threads of the block call it.
template <int kRows, int kThreads, typename T>
__device__ __forceinline__ void LoadRowsSwizzled(uint32_t tile, const T* rows,
                                                 int64_t step, int first,
                                                 int limit, int chunks,
                                                 int tid) {
  constexpr int kRowsPerPass = kThreads / 8;
  static_assert(kRowsPerPass % 8 == 0, "a pass keeps the swizzle phase");
  constexpr int kPasses = (kRows + kRowsPerPass - 1) / kRowsPerPass;
  const int c = tid % 8;
  const int r0 = tid / 8;
  const T* src = rows + (first + r0) * step + c * 8;
  const int64_t pass_step = kRowsPerPass * step;
  const uint32_t dst = tile + r0 * 128 + ((c ^ (r0 & 7)) << 4);
  const bool column_valid = c < chunks;
  if (column_valid && first + kRows <= limit) {
    // Every row and this thread's chunk exist (all tiles but a sequence's
    // last at head_dim 64): no per-row bounds test or source select, which
    // were half of the loader's instructions.
#pragma unroll
    for (int pass = 0; pass < kPasses; ++pass) {
      if (kRows % kRowsPerPass == 0 || r0 + pass * kRowsPerPass < kRows) {
        CpAsync16(dst + pass * kRowsPerPass * 128, src, true);
      }
      src += pass_step;
    }
    return;
  }
#pragma unroll
  for (int pass = 0; pass < kPasses; ++pass) {
    const int r = r0 + pass * kRowsPerPass;
    if (kRows % kRowsPerPass == 0 || r < kRows) {
      const bool valid = column_valid && first + r < limit;
      CpAsync16(dst + pass * kRowsPerPass * 128, valid ? src : rows, valid);
    }
    src += pass_step;
  }
}

// LoadRowsSwizzled over the kPanels 64-column panels of a tile of kRows rows
// (panel p, columns 64 p .. 64 p + 63, at tile + p * kRows * 128).
template <int kRows, int kThreads, int kPanels, typename T>
__device__ __forceinline__ void LoadPanelsSwizzled(uint32_t tile, const T* rows,
                                                   int64_t step, int first,
                                                   int limit, int chunks,
                                                   int tid) {
#pragma unroll
  for (int panel = 0; panel < kPanels; ++panel) {
    LoadRowsSwizzled<kRows, kThreads>(tile + panel * kRows * 128,
                                      rows + 64 * panel, step, first, limit,
                                      chunks - 8 * panel, tid);
  }
}

// One step of a double-buffered K/V pipeline read by wgmma: when `has_next`,
// starts loading the next tiles (selected rows [next_first, next_first +
// kRows) of K and V, kPanels panels each, into the free buffers at `next_k`
// and `next_v`), then waits for every earlier copy and publishes the current
// tiles to the whole block, including the async proxy that wgmma reads
// through. All kThreads threads of the block call it.
template <int kRows, int kThreads, int kPanels, typename T>
__device__ __forceinline__ void AdvanceKeyValueTiles(
    bool has_next, uint32_t next_k, uint32_t next_v, const T* k_rows,
    int64_t k_step, const T* v_rows, int64_t v_step, int next_first, int limit,
    int chunks, int tid) {
  if (has_next) {
    LoadPanelsSwizzled<kRows, kThreads, kPanels>(
        next_k, k_rows, k_step, next_first, limit, chunks, tid);
    LoadPanelsSwizzled<kRows, kThreads, kPanels>(
        next_v, v_rows, v_step, next_first, limit, chunks, tid);
    CpAsyncCommit();
    CpAsyncWait<1>();
  } else {
    CpAsyncWait<0>();
  }
  FenceSharedForAsyncProxy();
  __syncthreads();
}

// Writes `packed` (two 16-bit elements) at row `row`, columns 8 * tile +
// 2 * pair and the next, of a swizzled staging area: the accumulator layout
// of mma.sync and wgmma (row group / group + 8, column pair of n8 tile).
__device__ __forceinline__ void StagePair(unsigned char* stage, int row,
                                          int tile, int pair, uint32_t packed) {
  *reinterpret_cast<uint32_t*>(stage + SwizzledOffset(row, tile) + 4 * pair) =
      packed;
}

// Stages one warp's 16 rows of an m64n64 float accumulator (wgmma.cuh
// layout: rows `group` and `group` + 8, columns 8 t + 2 `pair` and the next)
// as 16-bit values: row `group` times scale_low, row `group` + 8 times
// scale_high. Follow with __syncwarp() and StoreStagedRows.
template <DataType kDtype>
__device__ __forceinline__ void StageAccumulatorRows(unsigned char* stage,
                                                     const float (&acc)[32],
                                                     float scale_low,
                                                     float scale_high,
                                                     int group, int pair) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const float scale = h == 0 ? scale_low : scale_high;
#pragma unroll
    for (int t = 0; t < 8; ++t) {
      StagePair(stage, group + h * 8, t, pair,
                PackPair<kDtype>(acc[4 * t + 2 * h] * scale,
                                 acc[4 * t + 2 * h + 1] * scale));
    }
  }
}

// Copies the 16 staged rows of one warp to selected rows [first, first + 16)
// of a strided view (`rows` is selected row 0, `step` the distance between
// selected rows), skipping rows >= limit and chunks >= `chunks`. Call after
// __syncwarp() following the StagePair writes; all 32 lanes call it.
template <typename T>
__device__ __forceinline__ void StoreStagedRows(const unsigned char* stage,
                                                T* rows, int64_t step,
                                                int first, int limit,
                                                int chunks, int lane) {
#pragma unroll
  for (int it = 0; it < 16 * 8 / 32; ++it) {
    const int i = it * 32 + lane;
    const int r = i / 8;
    const int c = i % 8;
    if (first + r < limit && c < chunks) {
      *reinterpret_cast<uint4*>(rows + (first + r) * step + c * 8) =
          *reinterpret_cast<const uint4*>(stage + SwizzledOffset(r, c));
    }
  }
}

// The epilogue of an accumulator of kPanels m64n64 panels (acc[p]: columns
// 64 p .. 64 p + 63): one warp stages its 16 rows, row `group` times
// scale_low and row `group` + 8 times scale_high, through `stage` (its rows
// of a swizzled tile no wgmma reads any more; panel p at stage + p *
// panel_bytes) and stores them to selected rows [first, first + 16) of a
// strided view as StoreStagedRows does. All 32 lanes call it.
template <DataType kDtype, int kPanels, typename T>
__device__ __forceinline__ void StoreAccumulatorPanels(
    unsigned char* stage, int panel_bytes, const float (&acc)[kPanels][32],
    float scale_low, float scale_high, T* rows, int64_t step, int first,
    int limit, int chunks, int lane) {
#pragma unroll
  for (int panel = 0; panel < kPanels; ++panel) {
    StageAccumulatorRows<kDtype>(stage + panel * panel_bytes, acc[panel],
                                 scale_low, scale_high, lane / 4, lane % 4);
  }
  __syncwarp();
#pragma unroll
  for (int panel = 0; panel < kPanels; ++panel) {
    StoreStagedRows(stage + panel * panel_bytes, rows + 64 * panel, step, first,
                    limit, chunks - 8 * panel, lane);
  }
}

}  // namespace gpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CUDA_SWIZZLED_TILE_CUH_
