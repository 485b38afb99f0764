// File: tensor_map.cuh
//
// Copies of selected rows by the tensor memory accelerator (TMA, sm_90a).
// A group's selected rows of a q, k or v tensor form a regular 5-d view:
//
//   element (column c, row j, head h, segment s, batch entry b) at
//   data + b stride_b + (s L + offset + j r) stride_n + h stride_h + c
//
// (L the segment length, r the dilation rate), which one tensor map per
// group and tensor describes. A copy of a box of 64 columns x `box_rows` rows
// lands in shared memory in the 128-byte-swizzled layout that wgmma reads
// (swizzled_tile.cuh), rows past the group's positions and columns past
// head_dim filled with zeros, and completes on an mbarrier with its byte
// count. The host encodes the maps through the runtime's driver entry point,
// so nothing links against the driver library.

#ifndef KERNELS_CUDA_TENSOR_MAP_CUH_
#define KERNELS_CUDA_TENSOR_MAP_CUH_

#include <cuda.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/wgmma.cuh"
#include "kernels/dilated_params.h"

namespace dilated {
namespace kernels {
namespace gpu {

// Calls with more groups than this copy with cp.async (the tensor maps
// travel in the kernels' parameters, 128 bytes a map).
constexpr int kMaxTmaGroups = 8;

// Whether a call's tensors may be copied by TMA at all: the closed form's
// fixed-length layout, keys that share the queries' geometry, and few enough
// groups. Each group's view must then still encode (EncodeSelectedRowMap).
inline bool TmaCopiesApply(const ForwardParams& p) {
  return p.num_groups <= kMaxTmaGroups && !IsPacked(p) &&
         p.key_seq_len == p.seq_len && p.key_position_offset == 0;
}

// The tensor maps of one group's q, k and v.
struct SelectedRowMaps {
  CUtensorMap q;
  CUtensorMap k;
  CUtensorMap v;
};

namespace tensor_map_internal {

using EncodeTiledFn = CUresult (*)(CUtensorMap*, CUtensorMapDataType,
                                   cuuint32_t, void*, const cuuint64_t*,
                                   const cuuint64_t*, const cuuint32_t*,
                                   const cuuint32_t*, CUtensorMapInterleave,
                                   CUtensorMapSwizzle, CUtensorMapL2promotion,
                                   CUtensorMapFloatOOBfill);

// cuTensorMapEncodeTiled, or null where the driver has none.
inline EncodeTiledFn EncodeTiled() {
  static const EncodeTiledFn encode = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult found;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000,
                                         cudaEnableDefault,
                                         &found) != cudaSuccess ||
        found != cudaDriverEntryPointSuccess) {
      return static_cast<EncodeTiledFn>(nullptr);
    }
    return reinterpret_cast<EncodeTiledFn>(fn);
  }();
  return encode;
}

inline bool MultipleOf16(int64_t bytes) { return bytes % 16 == 0; }

}  // namespace tensor_map_internal

// Encodes the map of group `g`'s selected rows of `t` (16-bit elements) for
// boxes of 64 columns x `box_rows` rows. Returns false, leaving the caller to
// copy with cp.async, where TMA cannot address the view: a stride or the
// first selected row not 16-byte aligned, or a sequence that is not a whole
// number of segments.
inline bool EncodeSelectedRowMap(const TensorParams& t, const ForwardParams& p,
                                 const GroupParams& g, int box_rows,
                                 CUtensorMap* map) {
  using tensor_map_internal::MultipleOf16;
  const tensor_map_internal::EncodeTiledFn encode =
      tensor_map_internal::EncodeTiled();
  constexpr int64_t kBytes = 2;
  if (encode == nullptr || g.positions <= 0 || g.segment_length <= 0 ||
      p.seq_len % g.segment_length != 0 || p.head_dim % 8 != 0 ||
      box_rows > 256) {
    return false;
  }
  char* first = static_cast<char*>(t.data) + g.offset * t.stride_n * kBytes;
  const cuuint64_t dims[5] = {
      static_cast<cuuint64_t>(p.head_dim), static_cast<cuuint64_t>(g.positions),
      static_cast<cuuint64_t>(p.num_heads),
      static_cast<cuuint64_t>(p.seq_len / g.segment_length),
      static_cast<cuuint64_t>(p.batch)};
  const int64_t strides[4] = {
      g.dilation_rate * t.stride_n * kBytes, t.stride_h * kBytes,
      g.segment_length * t.stride_n * kBytes, t.stride_b * kBytes};
  cuuint64_t byte_strides[4];
  for (int i = 0; i < 4; ++i) {
    // A dimension of extent 1 is never stepped over; TMA still wants its
    // stride aligned, so any aligned value serves.
    const int64_t stride = dims[i + 1] == 1 ? 16 : strides[i];
    if (stride <= 0 || !MultipleOf16(stride) || stride >= (int64_t{1} << 40)) {
      return false;
    }
    byte_strides[i] = static_cast<cuuint64_t>(stride);
  }
  if (reinterpret_cast<uintptr_t>(first) % 16 != 0) return false;
  const cuuint32_t box[5] = {64, static_cast<cuuint32_t>(box_rows), 1, 1, 1};
  const cuuint32_t element_strides[5] = {1, 1, 1, 1, 1};
  return encode(map, CU_TENSOR_MAP_DATA_TYPE_UINT16, 5, first, dims,
                byte_strides, box, element_strides,
                CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

// Encodes, for every group of `p`, the maps of two tensors' selected rows
// in boxes of `box_rows` rows (group i's into first_maps[i] and
// second_maps[i]); false, with the maps unspecified, where the call cannot
// be copied by TMA (TmaCopiesApply) or some group's view does not encode.
inline bool EncodeSelectedRowMapPairs(const ForwardParams& p,
                                      const TensorParams& first,
                                      const TensorParams& second, int box_rows,
                                      CUtensorMap* first_maps,
                                      CUtensorMap* second_maps) {
  if (!TmaCopiesApply(p)) return false;
  for (int i = 0; i < p.num_groups; ++i) {
    if (!EncodeSelectedRowMap(first, p, p.groups[i], box_rows,
                              &first_maps[i]) ||
        !EncodeSelectedRowMap(second, p, p.groups[i], box_rows,
                              &second_maps[i])) {
      return false;
    }
  }
  return true;
}

// Starts the TMA copy of the box at (column, row, head, segment, batch) of
// `map` into shared address `dst` (1024-byte aligned); its bytes complete on
// the mbarrier `bar`. `map` is a kernel parameter (__grid_constant__).
__device__ __forceinline__ void TmaLoadSelectedRows(uint32_t dst,
                                                    const CUtensorMap* map,
                                                    uint32_t bar, int column,
                                                    int row, int head,
                                                    int segment, int batch) {
#if DA_WGMMA_ENABLED
  asm volatile(
      "cp.async.bulk.tensor.5d.shared::cluster.global.tile.mbarrier::complete_"
      "tx::bytes [%0], [%1, {%2, %3, %4, %5, %6}], [%7];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(column), "r"(row), "r"(head),
      "r"(segment), "r"(batch), "r"(bar)
      : "memory");
#endif
}

}  // namespace gpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CUDA_TENSOR_MAP_CUH_
