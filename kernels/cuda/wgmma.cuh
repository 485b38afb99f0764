// File: wgmma.cuh
//
// Thin wrappers over the Hopper (sm_90a) warpgroup tensor-core instructions:
// wgmma.mma_async with float32 accumulators, its fences and completion
// groups, and the shared-memory matrix descriptor. A warpgroup is four
// consecutive warps (128 threads); every wrapper here must be executed by all
// of them (".sync.aligned").
//
// Shared-memory operands use the 128-byte swizzle: a tile is stored as rows
// of 64 16-bit elements (128 bytes), row r's 16-byte chunk c at byte
//   r * 128 + ((c ^ (r % 8)) * 16)
// of a 1024-byte aligned base (the hardware applies the same XOR of address
// bits [4, 7) with bits [7, 10)). Wider rows are stored as panels of 64
// columns, one after the other.
//
// Accumulator layout of m64nN (PTX ISA, "wgmma register fragments"): warp w
// of the warpgroup owns rows 16 w .. 16 w + 15 and, with lane = 4 * group +
// pair, d[4 t + e] is row 16 w + group + 8 (e / 2), column 8 t + 2 pair +
// e % 2: the mma.sync m16n8 C layout repeated over N / 8 tiles. A register
// operands of k16 use the mma.sync m16n8k16 A layout on each warp's 16 rows.
//
// Only the sm_90a compilation pass emits these instructions; in other passes
// the wrappers compile to nothing and callers must not launch kernels that use
// them (see WgmmaAvailable in flash_attention.h).

#ifndef KERNELS_CUDA_WGMMA_CUH_
#define KERNELS_CUDA_WGMMA_CUH_

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/device_primitives.cuh"
#include "kernels/dilated_params.h"

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && \
    defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define DA_WGMMA_ENABLED 1
#else
#define DA_WGMMA_ENABLED 0
#endif

namespace dilated {
namespace kernels {
namespace gpu {

// Returns `value`, which the caller knows to be the same in every lane of
// the warp (a warpgroup index, a tile's buffer parity), as lane 0's: a
// broadcast ptxas treats as warp-uniform. The shared addresses of wgmma
// operands computed from it then stay in uniform registers, where wgmma
// takes its descriptors; from a value ptxas cannot prove uniform it builds
// every descriptor in ordinary registers and moves it to a uniform one
// before each wgmma (40-90 extra instructions per tile in the backward
// kernels, read off cuobjdump -sass).
__device__ __forceinline__ int WarpUniform(int value) {
  return __shfl_sync(0xffffffffu, value, 0);
}

// Returns the descriptor of a 128-byte-swizzled operand at shared address
// `addr` (1024-byte aligned, or advanced from such a base by whole k16
// steps). `leading_bytes` and `stride_bytes` are the PTX "leading dimension"
// and "stride dimension" byte offsets: for a K-major operand the stride is
// the distance between 8-row groups (1024) and the leading offset is unused;
// for an MN-major operand the stride is the distance between 8-row groups
// along K and the leading offset the distance between 64-column panels.
__device__ __forceinline__ uint64_t SwizzledDescriptor(uint32_t addr,
                                                       uint32_t leading_bytes,
                                                       uint32_t stride_bytes) {
  uint64_t desc = 0;
  desc |= static_cast<uint64_t>((addr >> 4) & 0x3fff);
  desc |= static_cast<uint64_t>((leading_bytes >> 4) & 0x3fff) << 16;
  desc |= static_cast<uint64_t>((stride_bytes >> 4) & 0x3fff) << 32;
  desc |= static_cast<uint64_t>(1) << 62;  // 128-byte swizzle
  return desc;
}

// SwizzledDescriptor(tile + offset, 1024, 1024) for the offsets of one
// tile, from a base built once: only the address field changes, and adding
// offset / 16 to it cannot carry out of its 14 bits because shared addresses
// stay below 256 KiB. Each descriptor then costs one add instead of an add,
// a shift, a mask and an or, which ptxas otherwise redid for every wgmma of
// every tile.
class SwizzledTileDescriptor {
 public:
  __device__ __forceinline__ explicit SwizzledTileDescriptor(uint32_t tile)
      : low_(static_cast<uint32_t>(SwizzledDescriptor(tile, 1024, 1024))) {}

  // The descriptor of the operand `offset_bytes` (a multiple of 16) into
  // the tile.
  __device__ __forceinline__ uint64_t At(uint32_t offset_bytes) const {
    return (static_cast<uint64_t>(kHigh) << 32) | (low_ + (offset_bytes >> 4));
  }

 private:
  // Stride 1024 bytes and the 128-byte swizzle: SwizzledDescriptor's upper
  // half for these tiles.
  static constexpr uint32_t kHigh = (1024 >> 4) | (1u << 30);
  uint32_t low_;
};

// Orders this thread's earlier register writes before the warpgroup's next
// wgmma reads them (accumulators and register A operands).
__device__ __forceinline__ void WgmmaFence() {
#if DA_WGMMA_ENABLED
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}

// Closes the group of wgmma issued since the last commit.
__device__ __forceinline__ void WgmmaCommit() {
#if DA_WGMMA_ENABLED
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}

// Waits until at most kPending committed wgmma groups are in flight.
template <int kPending>
__device__ __forceinline__ void WgmmaWait() {
#if DA_WGMMA_ENABLED
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kPending)
               : "memory");
#endif
}

// Keeps the compiler from moving reads and writes of wgmma accumulators
// across the WgmmaWait that completes them (an empty asm that reads and
// writes every register of `acc`); call right after that wait.
template <int kN>
__device__ __forceinline__ void WgmmaPinAccumulators(float (&acc)[kN]) {
#pragma unroll
  for (int i = 0; i < kN; ++i) asm volatile("" : "+f"(acc[i])::"memory");
}

template <int kRows, int kN>
__device__ __forceinline__ void WgmmaPinAccumulators(float (&acc)[kRows][kN]) {
#pragma unroll
  for (int r = 0; r < kRows; ++r) WgmmaPinAccumulators(acc[r]);
}

// Makes this thread's generic-proxy shared-memory writes (st.shared,
// cp.async) visible to later wgmma reads (the async proxy). Call after the
// writes complete and before the barrier that publishes them.
__device__ __forceinline__ void FenceSharedForAsyncProxy() {
#if DA_WGMMA_ENABLED
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

// Rounds the accumulators of an m64 x (16 kSteps) product (wgmma.cuh layout)
// to the A-register operands of k16 steps [first, first + count): step kk
// takes n8 tiles 2 kk and 2 kk + 1. `first` and `count` must be constants
// after unrolling (the arrays stay in registers).
template <DataType kDtype, int kSteps>
__device__ __forceinline__ void PackScoreSteps(const float (&acc)[8 * kSteps],
                                               uint32_t (&a)[kSteps][4],
                                               int first, int count) {
#pragma unroll
  for (int kk = first; kk < first + count; ++kk) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      a[kk][e] = PackPair<kDtype>(acc[8 * kk + 2 * e], acc[8 * kk + 2 * e + 1]);
    }
  }
}

// PackScoreSteps over all kSteps steps.
template <DataType kDtype, int kSteps>
__device__ __forceinline__ void PackScores(const float (&acc)[8 * kSteps],
                                           uint32_t (&a)[kSteps][4]) {
  PackScoreSteps<kDtype>(acc, a, 0, kSteps);
}

// Operand lists of 8 accumulators each, for the asm statements below.
#define DA_WGMMA_ACC8(d, i)                                       \
  "+f"(d[i + 0]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), \
      "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), "+f"(d[i + 7])
#define DA_WGMMA_ACC32(d)                                         \
  DA_WGMMA_ACC8(d, 0), DA_WGMMA_ACC8(d, 8), DA_WGMMA_ACC8(d, 16), \
      DA_WGMMA_ACC8(d, 24)
#define DA_WGMMA_ACC64(d)                                        \
  DA_WGMMA_ACC32(d), DA_WGMMA_ACC8(d, 32), DA_WGMMA_ACC8(d, 40), \
      DA_WGMMA_ACC8(d, 48), DA_WGMMA_ACC8(d, 56)

#define DA_WGMMA_REGS32                                                     \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, "  \
  "%30, %31}"
#define DA_WGMMA_REGS64                                                     \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, "  \
  "%30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, "  \
  "%44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, "  \
  "%58, %59, %60, %61, %62, %63}"

// The PTX element type of the 16-bit inputs.
template <DataType kDtype>
struct WgmmaType;
template <>
struct WgmmaType<DataType::kFloat16> {
  static constexpr const char* kName = "f16";
};
template <>
struct WgmmaType<DataType::kBFloat16> {
  static constexpr const char* kName = "bf16";
};

// d (64 x kN) = A (64 x 16, K-major in shared memory) * B (16 x kN,
// K-major: kN rows of 16) + (accumulate ? d : 0), kN = 64 or 128.
// Asynchronous: d must not be read or written until a WgmmaWait covers it.
template <DataType kDtype, int kN>
__device__ __forceinline__ void WgmmaSS(float (&d)[kN / 2], uint64_t desc_a,
                                        uint64_t desc_b, bool accumulate);

// d (64 x 64) = A (64 x 16 in registers, four 32-bit pairs) * B (16 x 64,
// MN-major in shared memory) + d. Asynchronous as above; `a` must also stay
// unchanged until then.
template <DataType kDtype>
__device__ __forceinline__ void WgmmaRS64x64(float (&d)[32],
                                             const uint32_t (&a)[4],
                                             uint64_t desc_b);

// d (64 x kN) = A (64 x 16 in registers, four 32-bit pairs) * B (16 x kN,
// K-major: kN rows of 16, in shared memory) + (accumulate ? d : 0), kN = 64
// or 128. Asynchronous as WgmmaRS64x64.
template <DataType kDtype, int kN>
__device__ __forceinline__ void WgmmaRSKMajor(float (&d)[kN / 2],
                                              const uint32_t (&a)[4],
                                              uint64_t desc_b, bool accumulate);

// d (64 x 64) = A (64 x 16) * B (16 x 64) + (accumulate ? d : 0), both
// MN-major in shared memory (A's 64 rows along a swizzled row of 128 bytes,
// its 16 columns down 16 rows: the layout of a tile that holds A^T).
// Asynchronous as WgmmaSS.
template <DataType kDtype>
__device__ __forceinline__ void WgmmaSSTransposed64x64(float (&d)[32],
                                                       uint64_t desc_a,
                                                       uint64_t desc_b,
                                                       bool accumulate);

// The products of every kernel, over tiles of kPanels 64-column panels
// (wgmma.cuh layout, panel p at `tile` + p * panel_bytes). They are
// templates: the specializations they call, defined below, precede every
// instantiation.

// Issues (does not commit) acc (64 x kN) = A B^T over the panels' columns:
// A is the 64 rows at `a`, B the kN rows at `b`, both K-major; four k16
// steps of 32 bytes along each panel's swizzled rows.
template <DataType kDtype, int kN, int kPanels>
__device__ __forceinline__ void WgmmaRowProducts(float (&acc)[kN / 2],
                                                 uint32_t a,
                                                 uint32_t a_panel_bytes,
                                                 uint32_t b,
                                                 uint32_t b_panel_bytes) {
#pragma unroll
  for (int panel = 0; panel < kPanels; ++panel) {
    const SwizzledTileDescriptor a_desc(a + panel * a_panel_bytes);
    const SwizzledTileDescriptor b_desc(b + panel * b_panel_bytes);
#pragma unroll
    for (int ks = 0; ks < 4; ++ks) {
      WgmmaSS<kDtype, kN>(acc, a_desc.At(32 * ks), b_desc.At(32 * ks),
                          panel > 0 || ks > 0);
    }
  }
}

// Issues (does not commit) acc[p] += A B_p for every panel p over k16
// steps [first, first + count) of A: A in the register layout (rows of a
// score-like product, PackScoreSteps), B the tile at `b`, MN-major, 16 rows
// (2048 bytes) per k16 step.
template <DataType kDtype, int kSteps, int kPanels>
__device__ __forceinline__ void WgmmaAccumulatePanels(
    float (&acc)[kPanels][32], const uint32_t (&a)[kSteps][4], uint32_t b,
    uint32_t b_panel_bytes, int first, int count) {
#pragma unroll
  for (int panel = 0; panel < kPanels; ++panel) {
    const SwizzledTileDescriptor b_desc(b + panel * b_panel_bytes);
#pragma unroll
    for (int kk = first; kk < first + count; ++kk) {
      WgmmaRS64x64<kDtype>(acc[panel], a[kk], b_desc.At(2048 * kk));
    }
  }
}

#if DA_WGMMA_ENABLED
#define DA_DEFINE_WGMMA_RS_KMAJOR(DTYPE, PTX_TYPE)                           \
  template <>                                                                \
  __device__ __forceinline__ void WgmmaRSKMajor<DTYPE, 64>(                  \
      float(&d)[32], const uint32_t(&a)[4], uint64_t desc_b,                 \
      bool accumulate) {                                                     \
    asm volatile(                                                            \
        "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"                         \
        "wgmma.mma_async.sync.aligned.m64n64k16.f32." PTX_TYPE "." PTX_TYPE  \
        " " DA_WGMMA_REGS32 ", {%32, %33, %34, %35}, %36, p, 1, 1, 0;\n}\n"  \
        : DA_WGMMA_ACC32(d)                                                  \
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b),           \
          "r"(static_cast<int>(accumulate)));                                \
  }                                                                          \
  template <>                                                                \
  __device__ __forceinline__ void WgmmaRSKMajor<DTYPE, 128>(                 \
      float(&d)[64], const uint32_t(&a)[4], uint64_t desc_b,                 \
      bool accumulate) {                                                     \
    asm volatile(                                                            \
        "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"                         \
        "wgmma.mma_async.sync.aligned.m64n128k16.f32." PTX_TYPE "." PTX_TYPE \
        " " DA_WGMMA_REGS64 ", {%64, %65, %66, %67}, %68, p, 1, 1, 0;\n}\n"  \
        : DA_WGMMA_ACC64(d)                                                  \
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b),           \
          "r"(static_cast<int>(accumulate)));                                \
  }
#define DA_DEFINE_WGMMA_SS(DTYPE, PTX_TYPE)                                  \
  template <>                                                                \
  __device__ __forceinline__ void WgmmaSS<DTYPE, 128>(                       \
      float(&d)[64], uint64_t desc_a, uint64_t desc_b, bool accumulate) {    \
    asm volatile(                                                            \
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"                         \
        "wgmma.mma_async.sync.aligned.m64n128k16.f32." PTX_TYPE "." PTX_TYPE \
        " " DA_WGMMA_REGS64 ", %64, %65, p, 1, 1, 0, 0;\n}\n"                \
        : DA_WGMMA_ACC64(d)                                                  \
        : "l"(desc_a), "l"(desc_b), "r"(static_cast<int>(accumulate)));      \
  }                                                                          \
  template <>                                                                \
  __device__ __forceinline__ void WgmmaSS<DTYPE, 64>(                        \
      float(&d)[32], uint64_t desc_a, uint64_t desc_b, bool accumulate) {    \
    asm volatile(                                                            \
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"                         \
        "wgmma.mma_async.sync.aligned.m64n64k16.f32." PTX_TYPE "." PTX_TYPE  \
        " " DA_WGMMA_REGS32 ", %32, %33, p, 1, 1, 0, 0;\n}\n"                \
        : DA_WGMMA_ACC32(d)                                                  \
        : "l"(desc_a), "l"(desc_b), "r"(static_cast<int>(accumulate)));      \
  }
#define DA_DEFINE_WGMMA_SS_TRANSPOSED(DTYPE, PTX_TYPE)                      \
  template <>                                                               \
  __device__ __forceinline__ void WgmmaSSTransposed64x64<DTYPE>(            \
      float(&d)[32], uint64_t desc_a, uint64_t desc_b, bool accumulate) {   \
    asm volatile(                                                           \
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"                        \
        "wgmma.mma_async.sync.aligned.m64n64k16.f32." PTX_TYPE "." PTX_TYPE \
        " " DA_WGMMA_REGS32 ", %32, %33, p, 1, 1, 1, 1;\n}\n"               \
        : DA_WGMMA_ACC32(d)                                                 \
        : "l"(desc_a), "l"(desc_b), "r"(static_cast<int>(accumulate)));     \
  }
#define DA_DEFINE_WGMMA_RS_64x64(DTYPE, PTX_TYPE)                           \
  template <>                                                               \
  __device__ __forceinline__ void WgmmaRS64x64<DTYPE>(                      \
      float(&d)[32], const uint32_t(&a)[4], uint64_t desc_b) {              \
    asm volatile(                                                           \
        "{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"                          \
        "wgmma.mma_async.sync.aligned.m64n64k16.f32." PTX_TYPE "." PTX_TYPE \
        " " DA_WGMMA_REGS32 ", {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n" \
        : DA_WGMMA_ACC32(d)                                                 \
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b));         \
  }
#else
#define DA_DEFINE_WGMMA_SS(DTYPE, PTX_TYPE)                                   \
  template <>                                                                 \
  __device__ __forceinline__ void WgmmaSS<DTYPE, 128>(float(&)[64], uint64_t, \
                                                      uint64_t, bool) {}      \
  template <>                                                                 \
  __device__ __forceinline__ void WgmmaSS<DTYPE, 64>(float(&)[32], uint64_t,  \
                                                     uint64_t, bool) {}
#define DA_DEFINE_WGMMA_RS_KMAJOR(DTYPE, PTX_TYPE)           \
  template <>                                                \
  __device__ __forceinline__ void WgmmaRSKMajor<DTYPE, 64>(  \
      float(&)[32], const uint32_t(&)[4], uint64_t, bool) {} \
  template <>                                                \
  __device__ __forceinline__ void WgmmaRSKMajor<DTYPE, 128>( \
      float(&)[64], const uint32_t(&)[4], uint64_t, bool) {}
#define DA_DEFINE_WGMMA_RS_64x64(DTYPE, PTX_TYPE)      \
  template <>                                          \
  __device__ __forceinline__ void WgmmaRS64x64<DTYPE>( \
      float(&)[32], const uint32_t(&)[4], uint64_t) {}
#define DA_DEFINE_WGMMA_SS_TRANSPOSED(DTYPE, PTX_TYPE)           \
  template <>                                                    \
  __device__ __forceinline__ void WgmmaSSTransposed64x64<DTYPE>( \
      float(&)[32], uint64_t, uint64_t, bool) {}
#endif

DA_DEFINE_WGMMA_SS(DataType::kFloat16, "f16")
DA_DEFINE_WGMMA_SS(DataType::kBFloat16, "bf16")
DA_DEFINE_WGMMA_RS_KMAJOR(DataType::kFloat16, "f16")
DA_DEFINE_WGMMA_RS_KMAJOR(DataType::kBFloat16, "bf16")
DA_DEFINE_WGMMA_RS_64x64(DataType::kFloat16, "f16")
    DA_DEFINE_WGMMA_RS_64x64(DataType::kBFloat16, "bf16")
        DA_DEFINE_WGMMA_SS_TRANSPOSED(DataType::kFloat16, "f16")
            DA_DEFINE_WGMMA_SS_TRANSPOSED(DataType::kBFloat16, "bf16")

#undef DA_DEFINE_WGMMA_SS
#undef DA_DEFINE_WGMMA_RS_KMAJOR
#undef DA_DEFINE_WGMMA_RS_64x64
#undef DA_DEFINE_WGMMA_SS_TRANSPOSED
#undef DA_WGMMA_ACC8
#undef DA_WGMMA_ACC32
#undef DA_WGMMA_ACC64
#undef DA_WGMMA_REGS32
#undef DA_WGMMA_REGS64

}  // namespace gpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CUDA_WGMMA_CUH_
