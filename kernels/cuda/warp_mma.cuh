// File: warp_mma.cuh
//
// Warp-level pieces of the mma.sync kernels (flash_forward.cuh,
// flash_backward.cuh): where a lane reads its ldmatrix rows, accumulator
// tiles zeroed and packed into A fragments, and the epilogue that writes a
// warp's rows through shared memory with 16-byte stores. Fragment layouts as
// in device_primitives.cuh. Device code only.

#ifndef KERNELS_CUDA_WARP_MMA_CUH_
#define KERNELS_CUDA_WARP_MMA_CUH_

#include <cstdint>

#include "kernels/cuda/device_primitives.cuh"
#include "kernels/dilated_params.h"

namespace dilated {
namespace kernels {
namespace gpu {

// One lane's place in the m16n8k16 fragments of its warp.
struct MmaLane {
  int group;  // accumulator rows group and group + 8
  int pair;   // accumulator columns 2 * pair and the next
  // ldmatrix row and column offsets: "x" for A operands and transposed B
  // operands, "y" for B operands covering two n8 tiles.
  int x_row;
  int x_col;
  int y_row;
  int y_col;
};

__device__ __forceinline__ MmaLane MmaLaneOf(int lane) {
  MmaLane m;
  m.group = lane / 4;
  m.pair = lane % 4;
  m.x_row = (lane & 7) + ((lane >> 3) & 1) * 8;
  m.x_col = (lane >> 4) * 8;
  m.y_row = (lane & 7) + (lane >> 4) * 8;
  m.y_col = ((lane >> 3) & 1) * 8;
  return m;
}

// The shared address this lane gives ldmatrix for the 16 x 16 block at
// (row0, col0) of a row-major panel of row stride kStride: as an A operand
// or a transposed B operand (X), or as a B operand of two n8 tiles (Y).
template <int kStride, typename T>
__device__ __forceinline__ uint32_t FragmentAddressX(const T* panel, int row0,
                                                     int col0,
                                                     const MmaLane& mma_lane) {
  return SharedAddress(panel + (row0 + mma_lane.x_row) * kStride + col0 +
                       mma_lane.x_col);
}

template <int kStride, typename T>
__device__ __forceinline__ uint32_t FragmentAddressY(const T* panel, int row0,
                                                     int col0,
                                                     const MmaLane& mma_lane) {
  return SharedAddress(panel + (row0 + mma_lane.y_row) * kStride + col0 +
                       mma_lane.y_col);
}

template <int kTiles>
__device__ __forceinline__ void ZeroTiles(float (&c)[kTiles][4]) {
#pragma unroll
  for (int t = 0; t < kTiles; ++t) {
#pragma unroll
    for (int e = 0; e < 4; ++e) c[t][e] = 0.0f;
  }
}

// Packs accumulator tiles 2 kk and 2 kk + 1 (16 rows by 16 columns of C),
// rounded to the 16-bit type, as the A fragment of k16 step kk: the C and A
// layouts agree lane for lane.
template <DataType kDtype, int kTiles>
__device__ __forceinline__ void PackAFragment(uint32_t (&a)[4],
                                              const float (&c)[kTiles][4],
                                              int kk) {
  a[0] = PackPair<kDtype>(c[2 * kk][0], c[2 * kk][1]);
  a[1] = PackPair<kDtype>(c[2 * kk][2], c[2 * kk][3]);
  a[2] = PackPair<kDtype>(c[2 * kk + 1][0], c[2 * kk + 1][1]);
  a[3] = PackPair<kDtype>(c[2 * kk + 1][2], c[2 * kk + 1][3]);
}

// Writes the warp's 16 accumulator rows times `scale`, rounded to T, into
// rows [row0, row0 + 16) of a row-major panel of row stride kStride.
template <DataType kDtype, int kTiles, int kStride, typename T>
__device__ __forceinline__ void StageRows(T* panel, int row0,
                                          const float (&c)[kTiles][4],
                                          float scale,
                                          const MmaLane& mma_lane) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int row = row0 + mma_lane.group + h * 8;
#pragma unroll
    for (int t = 0; t < kTiles; ++t) {
      *reinterpret_cast<uint32_t*>(panel + row * kStride + t * 8 +
                                   2 * mma_lane.pair) =
          PackPair<kDtype>(c[t][2 * h] * scale, c[t][2 * h + 1] * scale);
    }
  }
}

// Calls copy(r, c) for the rows r of a warp's kRows staged rows and the
// 16-byte chunks c of a row that this lane stores (the warp's lanes take
// consecutive chunks): those whose row first + r is below `num_rows` and
// whose chunk is below `chunks`.
template <int kRows, int kChunks, typename Copy>
__device__ __forceinline__ void ForEachStoredChunk(int first, int num_rows,
                                                   int chunks, int lane,
                                                   Copy&& copy) {
  static_assert((kRows * kChunks) % 32 == 0, "uneven store");
#pragma unroll
  for (int it = 0; it < kRows * kChunks / 32; ++it) {
    const int i = it * 32 + lane;
    const int r = i / kChunks;
    const int c = i % kChunks;
    if (first + r < num_rows && c < chunks) copy(r, c);
  }
}

// Copies chunk c (8 elements) of row r of a warp's rows staged at rows
// [row0, ...) of a row-major panel of row stride kStride to row `row` of
// `dst`, `step` elements apart.
template <int kStride, typename T>
__device__ __forceinline__ void CopyStagedChunk(T* dst, int64_t step, int row,
                                                const T* panel, int row0, int r,
                                                int c) {
  *reinterpret_cast<uint4*>(dst + row * step + c * 8) =
      *reinterpret_cast<const uint4*>(panel + (row0 + r) * kStride + c * 8);
}

// Stores the warp's kRows rows staged at rows [row0, row0 + kRows) of a
// row-major panel of row stride kStride to rows first, first + 1, ... of
// `dst` (`step` elements apart), rows below `num_rows` and chunks below
// `chunks` only.
template <int kRows, int kChunks, int kStride, typename T>
__device__ __forceinline__ void StoreStagedRows(T* dst, int64_t step,
                                                const T* panel, int row0,
                                                int first, int num_rows,
                                                int chunks, int lane) {
  ForEachStoredChunk<kRows, kChunks>(
      first, num_rows, chunks, lane, [&](int r, int c) {
        CopyStagedChunk<kStride>(dst, step, first + r, panel, row0, r, c);
      });
}

}  // namespace gpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CUDA_WARP_MMA_CUH_
