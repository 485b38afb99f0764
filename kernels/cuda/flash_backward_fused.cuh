// File: flash_backward_fused.cuh
//
// A one-kernel backward for Hopper (sm_90a) at head_dim 64 or 128: every
// product of a (query tile, key tile) pair is computed once. Each thread
// block holds 128 keys of a problem (two warpgroups of 64) and walks query
// tiles of 128 rows (64 at head_dim 128); per tile:
//   - S^T = K Q^T and dP^T = V dO^T, each warpgroup for its 64 keys;
//   - P^T and dS^T in registers, then dV += P^T dO and dK += dS^T Q, as in
//     FlashKeyValueWgmmaKernel (flash_backward_wgmma.cuh);
//   - dS^T also goes to shared memory, and each warpgroup multiplies 64 of
//     the tile's queries by all 128 keys for 64 of the columns (dQ_part =
//     dS K, both operands MN-major: at head_dim 64 one warpgroup per half
//     of the queries, at 128 one per half of the columns) and adds its
//     64 x 64 float32 result into a float32 dQ buffer with vector atomics.
// Five products per tile pair instead of the seven of the key/value and
// query kernels. The delta rows (FlashDeltaKernel) must be computed first,
// the dQ buffer zeroed before and rounded to the output dtype after (the
// buffer has grad_q's element offsets).
//
// Unordered, the additions into dQ arrive in no fixed order and dQ is not
// bit-for-bit reproducible. Ordered (dense problems), with R = kBlockN /
// kBlockM query tiles per key block, key block j of a problem walks the
// query tiles m = R j, R j + 1, ... modulo the tile count (from its
// diagonal on, without wrapping, under the causal mask), so query tile m
// takes its additions from key blocks floor(m / R), floor(m / R) - 1, ...
// in that order: a block waits, at its step t, until the tile's turn
// counter reads t / R, adds, and sets it to t / R + 1. Blocks that run side
// by side reach their steps together, so the wait is short; it relies on
// the blocks of a problem being scheduled in index order (a waiting block
// only waits for the next one up, modulo the problem's blocks) and on every
// problem's rows being a multiple of kBlockN (the turns of a tile then run
// 0, 1, ... without gaps).
//
// Included by the per-(head_dim, dtype) instantiation files only.

#ifndef KERNELS_CUDA_FLASH_BACKWARD_FUSED_CUH_
#define KERNELS_CUDA_FLASH_BACKWARD_FUSED_CUH_

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/async_barrier.cuh"
#include "kernels/cuda/device_primitives.cuh"
#include "kernels/cuda/flash_backward.cuh"
#include "kernels/cuda/flash_backward_wgmma.cuh"
#include "kernels/cuda/flash_common.cuh"
#include "kernels/cuda/swizzled_tile.cuh"
#include "kernels/cuda/tensor_map.cuh"
#include "kernels/cuda/wgmma.cuh"
#include "kernels/dilated_params.h"

namespace dilated {
namespace kernels {
namespace gpu {

// Shape of FlashFusedBackwardKernel: 128 keys per block in two warpgroups,
// head_dim 64 (128-query tiles) or 128 (64-query tiles); kFmaExpEveryT as
// Exp2Spread.
template <DataType kDtypeT, int kHeadDimT, bool kOrderedT,
          int kFmaExpEveryT = 0>
struct FusedBackwardTile {
  using T = typename Element<kDtypeT>::Type;
  static constexpr DataType kDtype = kDtypeT;
  static constexpr int kHeadDim = kHeadDimT;
  static constexpr int kPanels = kHeadDim / 64;
  static constexpr int kWarpgroups = 2;
  static constexpr int kBlockN = 64 * kWarpgroups;  // keys per block
  static constexpr int kBlockM = 128 / kPanels;     // queries per tile
  // The (64-query block, 64-column panel) of dQ that warpgroup g computes:
  // block g % kQueryBlocks, panel g / kQueryBlocks.
  static constexpr int kQueryBlocks = kBlockM / 64;
  static_assert(kQueryBlocks * kPanels == kWarpgroups, "one dQ part each");
  static constexpr int kMinBlocks = 1;
  static constexpr int kFmaExpEvery = kFmaExpEveryT;
  static constexpr bool kOrdered = kOrderedT;
  static constexpr int kThreads = 128 * kWarpgroups;
  static constexpr int kKeyBytes = kBlockN * 128 * kPanels;
  static constexpr int kQueryBytes = kBlockM * 128 * kPanels;
  // dS^T: kBlockN key rows of kBlockM queries, as kQueryBlocks panels.
  static constexpr int kScoreBytes = kBlockN * kBlockM * 2;
  // K, V, two Q and two dO buffers, dS^T, two lse and delta rows, slack.
  static constexpr size_t kSmemBytes = 2 * kKeyBytes + 4 * kQueryBytes +
                                       kScoreBytes +
                                       4 * kBlockM * sizeof(float) + 1024;
};

// The fused kernel's launch arguments: the key/value kernel's and the
// float32 dQ buffer (grad_q's element offsets, zeroed before the launch);
// when ordered, the turn counters, one per grad_q row (element offset /
// head_dim) of which the first row of each query tile's is used, zeroed
// before the launch.
struct FlashFusedBackwardArgs {
  FlashKeyValueWgmmaArgs kv;
  float* grad_q_sum;
  int* turns;
};

__device__ __forceinline__ int LoadAcquire(const int* address) {
  int value;
  asm volatile("ld.acquire.gpu.global.b32 %0, [%1];\n"
               : "=r"(value)
               : "l"(address)
               : "memory");
  return value;
}

__device__ __forceinline__ void StoreRelease(int* address, int value) {
  asm volatile("st.release.gpu.global.b32 [%0], %1;\n" ::"l"(address),
               "r"(value)
               : "memory");
}

// Writes this thread's packed dS^T pairs of k16 steps [first, first +
// count) into the swizzled dS^T tile at `tile` (kRows key rows per 64-query
// panel): a[kk][e] holds key row `row` + 8 (e & 1), queries 16 kk + 8 (e >>
// 1) + 2 pair and the next one.
template <int kRows, int kSteps>
__device__ __forceinline__ void StoreScoreSteps(uint32_t tile,
                                                const uint32_t (&a)[kSteps][4],
                                                int row, int pair, int first,
                                                int count) {
#pragma unroll
  for (int kk = first; kk < first + count; ++kk) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int r = row + 8 * (e & 1);
      const int chunk = (2 * kk + (e >> 1)) % 8;
      const uint32_t addr = tile + (kk / 4) * (kRows * 128) + r * 128 +
                            ((chunk ^ (r % 8)) * 16) + 4 * pair;
      asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(addr), "r"(a[kk][e])
                   : "memory");
    }
  }
}

template <class Tile>
__global__ void __launch_bounds__(Tile::kThreads, Tile::kMinBlocks)
    FlashFusedBackwardKernel(
        const __grid_constant__ FlashFusedBackwardArgs fused_args) {
#if DA_WGMMA_ENABLED
  const FlashKeyValueWgmmaArgs& kv_args = fused_args.kv;
  const FlashBackwardArgs& args = kv_args.base;
  using T = typename Tile::T;
  constexpr DataType kDtype = Tile::kDtype;
  constexpr int kBlockM = Tile::kBlockM;
  constexpr int kBlockN = Tile::kBlockN;
  constexpr int kPanels = Tile::kPanels;
  constexpr int kQueryBytes = Tile::kQueryBytes;
  constexpr int kScores = kBlockM / 2;  // accumulators of S^T per thread
  constexpr uint32_t kKeyPanel = kBlockN * 128;
  constexpr uint32_t kQueryPanel = kBlockM * 128;

  extern __shared__ __align__(16) unsigned char smem_raw[];
  unsigned char* smem = AlignedSharedBase(smem_raw);
  const uint32_t s_k = SharedAddress(smem);
  const uint32_t s_v = s_k + Tile::kKeyBytes;
  const uint32_t s_q = s_v + Tile::kKeyBytes;   // [2][kQueryBytes]
  const uint32_t s_do = s_q + 2 * kQueryBytes;  // [2][kQueryBytes]
  const uint32_t s_ds = s_do + 2 * kQueryBytes;
  float* s_lse = reinterpret_cast<float*>(smem + 2 * Tile::kKeyBytes +
                                          4 * kQueryBytes + Tile::kScoreBytes);
  float* s_delta = s_lse + 2 * kBlockM;
  const uint32_t query_full0 = SlackTail(smem_raw, Tile::kSmemBytes);
  const bool tma = kv_args.tma;
  if (tma && threadIdx.x == 0) {
    MbarrierInit(query_full0, 1);
    MbarrierInit(query_full0 + 8, 1);
  }
  __syncthreads();

  const BackwardParams& bp = args.params;
  const ForwardParams& p = bp.forward;
  const WorkItem w =
      DecodeBlock(args.block_begin, args.general, p, blockIdx.x, kBlockN,
                  /*heavy_last_first=*/false);
  const int num_rows = w.length;
  const int chunks = static_cast<int>(p.head_dim / 8);
  const int tid = threadIdx.x;
  const int k_begin = w.block * kBlockN;
  const int k_end = min(k_begin + kBlockN, num_rows);

  if (num_rows > 0) {
    const int warpgroup = tid / 128;
    const int warp = tid / 32;  // keys 16 warp .. 16 warp + 15 of the block
    const int lane = tid % 32;
    const int group = lane / 4;
    const int pair = lane % 4;
    const int warp_first = k_begin + warp * 16;
    const uint32_t my_k = s_k + warpgroup * 64 * 128;
    const uint32_t my_v = s_v + warpgroup * 64 * 128;

    const T* q_rows = SelectedRow0<const T>(p.q, w);
    const T* do_rows = SelectedRow0<const T>(bp.grad_out, w);
    const int64_t q_step = RowStep(p.q, w);
    const int64_t do_step = RowStep(bp.grad_out, w);
    const RowStatistics stats = MakeRowStatistics(args, w);
    float* dq_rows = fused_args.grad_q_sum + (SelectedRow0<T>(bp.grad_q, w) -
                                              static_cast<T*>(bp.grad_q.data));
    const int64_t dq_step = RowStep(bp.grad_q, w);

    auto load_query_tile = [&](int qt, int buf) {
      const int q0 = qt * kBlockM;
      if (tma) {
        if (tid == 0) {
          const uint32_t bar = query_full0 + 8 * buf;
          const int segment = static_cast<int>(
              w.segment_row / p.groups[w.group].segment_length);
          MbarrierArriveExpectBytes(bar, 2 * kQueryBytes);
#pragma unroll
          for (int panel = 0; panel < kPanels; ++panel) {
            TmaLoadSelectedRows(s_q + buf * kQueryBytes + panel * kQueryPanel,
                                &kv_args.q[w.group], bar, 64 * panel, q0,
                                static_cast<int>(w.head), segment,
                                static_cast<int>(w.batch));
            TmaLoadSelectedRows(s_do + buf * kQueryBytes + panel * kQueryPanel,
                                &kv_args.grad_out[w.group], bar, 64 * panel, q0,
                                static_cast<int>(w.head), segment,
                                static_cast<int>(w.batch));
          }
        }
        return;
      }
      LoadPanelsSwizzled<kBlockM, Tile::kThreads, kPanels>(
          s_q + buf * kQueryBytes, q_rows, q_step, q0, num_rows, chunks, tid);
      LoadPanelsSwizzled<kBlockM, Tile::kThreads, kPanels>(
          s_do + buf * kQueryBytes, do_rows, do_step, q0, num_rows, chunks,
          tid);
    };
    float next_lse = 0.0f;
    float next_delta = 0.0f;
    auto fetch_statistics = [&](int qt) {
      if (tid < kBlockM) {
        next_lse = stats.LseLog2(qt * kBlockM + tid);
        next_delta = stats.Delta(qt * kBlockM + tid);
      }
    };
    auto store_statistics = [&](int buf) {
      if (tid < kBlockM) {
        s_lse[buf * kBlockM + tid] = next_lse;
        s_delta[buf * kBlockM + tid] = next_delta;
      }
    };

    LoadPanelsSwizzled<kBlockN, Tile::kThreads, kPanels>(
        s_k, SelectedRow0<const T>(p.k, w), RowStep(p.k, w), k_begin, num_rows,
        chunks, tid);
    LoadPanelsSwizzled<kBlockN, Tile::kThreads, kPanels>(
        s_v, SelectedRow0<const T>(p.v, w), RowStep(p.v, w), k_begin, num_rows,
        chunks, tid);
    constexpr int kTilesPerBlock = kBlockN / kBlockM;  // R above
    const TileWalk queries =
        QueryTilesOf<kBlockM>(args.sparse, w, k_begin, num_rows, p.is_causal);
    const int num_tiles = queries.count;
    // Ordered: step t visits query tile (R w.block + t) mod query_tiles (the
    // causal walk starts there and ends before it would wrap).
    const int query_tiles = (num_rows + kBlockM - 1) / kBlockM;
    auto tile_at = [&](int t) {
      return Tile::kOrdered ? (kTilesPerBlock * w.block + t) % query_tiles
                            : queries.Tile(t);
    };
    if (!tma || num_tiles > 0) load_query_tile(tile_at(0), 0);
    CpAsyncCommit();
    fetch_statistics(tile_at(0));
    store_statistics(0);
    if (1 < num_tiles) fetch_statistics(tile_at(1));

    float acc_dv[kPanels][32];
    float acc_dk[kPanels][32];
#pragma unroll
    for (int panel = 0; panel < kPanels; ++panel) {
#pragma unroll
      for (int i = 0; i < 32; ++i) acc_dv[panel][i] = acc_dk[panel][i] = 0.0f;
    }
    float st[kScores];
    float dpt[kScores];
    const float scale_log2 = p.softmax_scale * kLog2e;

    for (int t = 0; t < num_tiles; ++t) {
      const int qt = tile_at(t);
      const int buf = t & 1;
      if (t + 1 < num_tiles) {
        load_query_tile(tile_at(t + 1), buf ^ 1);
        CpAsyncCommit();
        store_statistics(buf ^ 1);
        if (t + 2 < num_tiles) fetch_statistics(tile_at(t + 2));
      }
      if (t + 1 < num_tiles && !tma) {
        CpAsyncWait<1>();
      } else {
        CpAsyncWait<0>();
      }
      if (tma) MbarrierWait(query_full0 + 8 * buf, (t >> 1) & 1);
      FenceSharedForAsyncProxy();
      __syncthreads();  // K, V (first tile), Q, dO, lse and delta landed

      const int q0 = qt * kBlockM;
      const uint32_t q_tile = s_q + buf * kQueryBytes;
      const uint32_t do_tile = s_do + buf * kQueryBytes;
      const float* tlse = s_lse + buf * kBlockM;
      const float* tdelta = s_delta + buf * kBlockM;
      WgmmaFence();
      WgmmaRowProducts<kDtype, kBlockM, kPanels>(st, my_k, kKeyPanel, q_tile,
                                                 kQueryPanel);
      WgmmaCommit();
      WgmmaRowProducts<kDtype, kBlockM, kPanels>(dpt, my_v, kKeyPanel, do_tile,
                                                 kQueryPanel);
      WgmmaCommit();
      WgmmaWait<1>();

      const bool need_mask = p.is_causal && q0 < warp_first + 15;
      constexpr int kHalf = kScores / 2;
      constexpr int kHalfSteps = kBlockM / 32;
      uint32_t ap[kBlockM / 16][4];
      uint32_t ads[kBlockM / 16][4];
#pragma unroll
      for (int i = 0; i < kScores; i += 2) {
        const float2 lse =
            *reinterpret_cast<const float2*>(tlse + (i / 4) * 8 + 2 * pair);
        st[i] = Exp2Spread<Tile::kFmaExpEvery>(st[i] * scale_log2 - lse.x, i);
        st[i + 1] = Exp2Spread<Tile::kFmaExpEvery>(
            st[i + 1] * scale_log2 - lse.y, i + 1);
      }
      if (need_mask) {
        ZeroMaskedTransposed<kScores>(st, warp_first + group, q0 + 2 * pair);
      }
      WgmmaWait<0>();
#pragma unroll
      for (int half = 0; half < 2; ++half) {
#pragma unroll
        for (int i = half * kHalf; i < (half + 1) * kHalf; i += 2) {
          const float2 delta =
              *reinterpret_cast<const float2*>(tdelta + (i / 4) * 8 + 2 * pair);
          dpt[i] = st[i] * (dpt[i] * p.output_scale - delta.x);
          dpt[i + 1] = st[i + 1] * (dpt[i + 1] * p.output_scale - delta.y);
        }
        PackScoreSteps<kDtype>(st, ap, half * kHalfSteps, kHalfSteps);
        PackScoreSteps<kDtype>(dpt, ads, half * kHalfSteps, kHalfSteps);
        StoreScoreSteps<kBlockN>(s_ds, ads, warp * 16 + group, pair,
                                 half * kHalfSteps, kHalfSteps);
        WgmmaFence();
        WgmmaAccumulatePanels<kDtype>(acc_dv, ap, do_tile, kQueryPanel,
                                      half * kHalfSteps, kHalfSteps);
        WgmmaAccumulatePanels<kDtype>(acc_dk, ads, q_tile, kQueryPanel,
                                      half * kHalfSteps, kHalfSteps);
        WgmmaCommit();
      }
      // dS^T of both warpgroups is in shared memory: this warpgroup's part
      // of dQ over all keys.
      FenceSharedForAsyncProxy();
      __syncthreads();
      const int dq_block = warpgroup % Tile::kQueryBlocks;
      const int dq_panel = warpgroup / Tile::kQueryBlocks;
      float acc_dq[32];
      {
        const SwizzledTileDescriptor a_desc(s_ds + dq_block * (kBlockN * 128));
        const SwizzledTileDescriptor b_desc(s_k + dq_panel * kKeyPanel);
        WgmmaFence();
#pragma unroll
        for (int kk = 0; kk < kBlockN / 16; ++kk) {
          WgmmaSSTransposed64x64<kDtype>(acc_dq, a_desc.At(2048 * kk),
                                         b_desc.At(2048 * kk), kk > 0);
        }
        WgmmaCommit();
      }
      WgmmaWait<0>();
      WgmmaPinAccumulators(acc_dq);
      // Accumulator 4 c + e: query row + 8 (e / 2), columns 64 dq_panel +
      // 8 c + 2 pair and the next one (e even).
      int* turn = nullptr;
      if (Tile::kOrdered) {
        turn =
            fused_args.turns +
            (dq_rows - fused_args.grad_q_sum + q0 * dq_step) / Tile::kHeadDim;
        if (tid == 0) {
          while (LoadAcquire(turn) != t / kTilesPerBlock) {
          }
        }
        __syncthreads();
      }
      const int row = q0 + dq_block * 64 + (warp % 4) * 16 + group;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        if (row + 8 * h < num_rows) {
          float* out =
              dq_rows + (row + 8 * h) * dq_step + 64 * dq_panel + 2 * pair;
#pragma unroll
          for (int c = 0; c < 8; ++c) {
            atomicAdd(reinterpret_cast<float2*>(out + 8 * c),
                      make_float2(acc_dq[4 * c + 2 * h] * p.softmax_scale,
                                  acc_dq[4 * c + 2 * h + 1] * p.softmax_scale));
          }
        }
      }
      if (Tile::kOrdered) __threadfence();  // the additions before the turn
      __syncthreads();  // buffers `buf` and dS^T free for the next tile
      if (Tile::kOrdered && tid == 0) {
        StoreRelease(turn, t / kTilesPerBlock + 1);
      }
    }

    DrainEmptyWalk(queries);
    StoreAccumulatorPanels<kDtype>(
        smem + Tile::kKeyBytes + warp * 16 * 128, kKeyPanel, acc_dv,
        p.output_scale, p.output_scale, SelectedRow0<T>(bp.grad_v, w),
        RowStep(bp.grad_v, w), warp_first, num_rows, chunks, lane);
    StoreAccumulatorPanels<kDtype>(
        smem + warp * 16 * 128, kKeyPanel, acc_dk, p.softmax_scale,
        p.softmax_scale, SelectedRow0<T>(bp.grad_k, w), RowStep(bp.grad_k, w),
        warp_first, num_rows, chunks, lane);
  }
  ZeroUnselectedRows(SegmentStart<T>(bp.grad_v, w), bp.grad_v.stride_n, w,
                     k_begin, k_end, chunks, nullptr, tid, Tile::kThreads);
  ZeroUnselectedRows(SegmentStart<T>(bp.grad_k, w), bp.grad_k.stride_n, w,
                     k_begin, k_end, chunks, nullptr, tid, Tile::kThreads);
#else
  __trap();  // never launched: WgmmaAvailable() is false without sm_90a
#endif
}

// Launches FlashFusedBackwardKernel<Tile> on the closed form (the query
// tiles by TMA where every group's q and dO views encode), adding dQ into
// `grad_q_sum`; `turns` as FlashFusedBackwardArgs (unused unordered).
template <class Tile>
cudaError_t LaunchFlashFusedBackward(const FlashBackwardArgs& base,
                                     float* grad_q_sum, int* turns,
                                     cudaStream_t stream) {
  FlashFusedBackwardArgs args;
  args.kv.base = base;
  args.kv.base.general = ProblemIndex{};
  const ForwardParams& p = base.params.forward;
  const int64_t blocks =
      LaunchBlocks(p, ProblemIndex{}, Tile::kBlockN, args.kv.base.block_begin);
  args.kv.tma = EncodeSelectedRowMapPairs(
      p, p.q, base.params.grad_out, Tile::kBlockM, args.kv.q, args.kv.grad_out);
  args.grad_q_sum = grad_q_sum;
  args.turns = turns;
  return LaunchWithSmem<Tile>(FlashFusedBackwardKernel<Tile>, args, blocks,
                              stream);
}

}  // namespace gpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CUDA_FLASH_BACKWARD_FUSED_CUH_
