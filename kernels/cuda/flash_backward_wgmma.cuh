// File: flash_backward_wgmma.cuh
//
// The backward kernels of flash_backward.cuh for Hopper (sm_90a), head_dim
// 64, 128 or 256 (one, two or four 64-column panels per tile, as in the
// forward), on
// the warpgroup tensor cores (wgmma.cuh); same contract, same
// formulas, deterministic (no atomics). The query kernel runs first and
// computes D = rowsum(dO * out) itself (it holds the dO rows already), for
// its own use and, through FlashBackwardArgs::delta, for the key/value
// kernel, so FlashDeltaKernel's extra pass over dO and out is not needed.
// One warpgroup per block as the library runs them:
//   - FlashKeyValueWgmmaKernel: 64 keys of a problem per block, walking
//     query tiles of kBlockM rows. S^T = K Q^T and dP^T = V dO^T are
//     m64 x kBlockM products with every operand in shared memory;
//     dV += P^T dO and dK += dS^T Q take P^T and dS^T from registers.
//     At head_dim 256 two launches share the work (KeyValuePart): one
//     accumulates dV (S^T and dV products), the other dK (S^T, dP^T and dK
//     products), as 2 x 128 float32 accumulators would not fit a thread's
//     registers beside the scores.
//     With a FusedQuery mode (a shape measured in cuda_tile_sweep, not yet
//     run by the library) it also computes dQ, below.
//   - FlashQueryWgmmaKernel: 64 queries of a problem per block, walking key
//     tiles of kBlockN rows: S = Q K^T, dP = dO V^T from shared memory,
//     dQ += dS K with dS from registers.
// Tiles are 128-byte swizzled (swizzled_tile.cuh) and double-buffered. The
// walked tiles (Q and dO, or K and V) travel by TMA from one thread where
// the call's views have tensor maps (tensor_map.cuh: the closed form),
// completing on an mbarrier per buffer; otherwise, and for the block's own
// tiles, every thread copies with cp.async.
//
// The fused mode: two warpgroups of 64 keys per block (128 keys) walk query
// tiles of 128 rows (64 at head_dim 128), and dS^T also goes to shared
// memory, where each warpgroup multiplies 64 of the tile's queries by all
// 128 keys for 64 of the columns (dQ_part = dS K, both operands MN-major:
// at head_dim 64 one warpgroup per half of the queries, at 128 one per half
// of the columns) and adds its 64 x 64 float32 result into a float32 dQ
// buffer with two-float atomics: five products per tile pair instead of the
// seven of the two kernels. The delta rows (FlashDeltaKernel) must be
// computed first, the dQ buffer zeroed before and rounded to the output
// dtype after (it has grad_q's element offsets).
//   - FusedQuery::kUnordered: the additions into dQ arrive in no fixed
//     order; dQ is not bit-for-bit reproducible.
//   - FusedQuery::kOrdered (dense problems): with R = kBlockN / kBlockM
//     query tiles per key block, key block j of a problem walks the query
//     tiles R j, R j + 1, ... modulo their count (from its diagonal on,
//     without wrapping, under the causal mask), so query tile m takes its
//     additions from key blocks floor(m / R), floor(m / R) - 1, ... in that
//     order: a block waits, at its step t, until the tile's turn counter
//     reads t / R, adds, and sets it to t / R + 1. Blocks that run side by
//     side reach their steps together, so the wait is short. It relies on
//     the blocks of a problem being scheduled in index order (a waiting
//     block only waits for the next one up, modulo the problem's blocks)
//     and on every problem's rows being a multiple of kBlockN (the turns of
//     a tile then run 0, 1, ... without gaps).
//
// FlashBackward runs the ordered mode where fused_backward.h allows it
// (opt-in: slower than the dK/dV and dQ kernels as measured, in
// docs/PERFORMANCE_CUDA.md).
//
// Included by the per-(head_dim, dtype) instantiation files only.

#ifndef KERNELS_CUDA_FLASH_BACKWARD_WGMMA_CUH_
#define KERNELS_CUDA_FLASH_BACKWARD_WGMMA_CUH_

#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "kernels/cuda/async_barrier.cuh"
#include "kernels/cuda/bulk_reduce.cuh"
#include "kernels/cuda/device_primitives.cuh"
#include "kernels/cuda/flash_backward.cuh"
#include "kernels/cuda/flash_common.cuh"
#include "kernels/cuda/swizzled_tile.cuh"
#include "kernels/cuda/tensor_map.cuh"
#include "kernels/cuda/wgmma.cuh"
#include "kernels/dilated_params.h"

namespace dilated {
namespace kernels {
namespace gpu {

// Zeroes the probabilities of P^T (keys x queries, wgmma accumulator
// layout) whose query comes before the key: `key_row` is this thread's first
// key (its second is key_row + 8), `query_col` the query of its accumulator
// 0 (accumulator i holds query_col + (i / 4) * 8 + (i & 1)).
template <int kScores>
__device__ __forceinline__ void ZeroMaskedTransposed(float (&st)[kScores],
                                                     int key_row,
                                                     int query_col) {
#pragma unroll
  for (int i = 0; i < kScores; ++i) {
    const int key = key_row + ((i >> 1) & 1) * 8;
    if (key > query_col + (i / 4) * 8 + (i & 1)) st[i] = 0.0f;
  }
}

// Zeroes the probabilities of P (queries x keys, wgmma accumulator layout)
// of keys >= num_keys and, when causal, of keys after the query: `key_col`
// is the key of this thread's accumulator 0 (accumulator i holds key_col +
// (i / 4) * 8 + (i & 1)), `query_row` its first query (the second is
// query_row + 8).
template <int kScores>
__device__ __forceinline__ void ZeroMaskedScores(float (&s)[kScores],
                                                 int key_col, int query_row,
                                                 int num_keys, bool causal) {
#pragma unroll
  for (int i = 0; i < kScores; ++i) {
    const int key = key_col + (i / 4) * 8 + (i & 1);
    const int query = query_row + ((i >> 1) & 1) * 8;
    if (key >= num_keys || (causal && key > query)) s[i] = 0.0f;
  }
}

// Whether and how FlashKeyValueWgmmaKernel also computes dQ (above): not,
// by atomics from the consumer warps in any order or in each query tile's
// turn, or by the TMA unit's bulk additions from a shared staging tile in
// any order.
enum class FusedQuery { kNone, kUnordered, kOrdered, kUnorderedBulk };

// Shape of FlashKeyValueWgmmaKernel: 64 keys per warpgroup, kWarpgroupsT
// warpgroups per block (1, or 2 with a FusedQuery mode), kBlockM queries per
// tile (64 or 128), head_dim padded to kHeadDim (64, 128 or 256: one, two or
// four 64-column panels per tile); kFmaExpEveryT: which exponentials go to
// the FMA pipe (Exp2Spread); kPartT: both gradients, or one of them per
// launch (at head_dim 256 the two accumulators would take every register).
template <DataType kDtypeT, int kBlockMT, int kMinBlocksT, int kHeadDimT = 64,
          int kFmaExpEveryT = 0, int kWarpgroupsT = 1,
          FusedQuery kFusedQueryT = FusedQuery::kNone,
          KeyValuePart kPartT = KeyValuePart::kBoth>
struct WgmmaKeyValueTile {
  using T = typename Element<kDtypeT>::Type;
  static constexpr DataType kDtype = kDtypeT;
  static constexpr int kHeadDim = kHeadDimT;
  static constexpr int kPanels = kHeadDim / 64;
  static constexpr int kWarpgroups = kWarpgroupsT;
  static constexpr int kBlockN = 64 * kWarpgroups;  // keys per block
  static constexpr int kBlockM = kBlockMT;
  static constexpr int kMinBlocks = kMinBlocksT;
  static constexpr int kFmaExpEvery = kFmaExpEveryT;
  static constexpr FusedQuery kFusedQuery = kFusedQueryT;
  static constexpr bool kFused = kFusedQuery != FusedQuery::kNone;
  static constexpr KeyValuePart kPart = kPartT;
  static constexpr bool kValue = kPart != KeyValuePart::kKeyOnly;  // dV
  static constexpr bool kKey = kPart != KeyValuePart::kValueOnly;  // dK
  static constexpr int kThreads = 128 * kWarpgroups;
  static constexpr int kKeyBytes = kBlockN * 128 * kPanels;
  static constexpr int kQueryBytes = kBlockM * 128 * kPanels;
  static constexpr int kStatisticsBytes = 4 * kBlockM * sizeof(float);
  // Fused: dS^T, kBlockN key rows of kBlockM queries as kQueryBlocks
  // panels; warpgroup g computes dQ's 64-query block g % kQueryBlocks, panel
  // g / kQueryBlocks.
  static constexpr int kQueryBlocks = kBlockM / 64;
  static constexpr int kScoreBytes = kFused ? kBlockN * kBlockM * 2 : 0;
  // Bulk: each warpgroup's 64 x 64 part of dQ staged as 64 rows of
  // kStageRowFloats floats (8 floats of padding per row keep the float2
  // stores of a half-warp on distinct banks).
  static constexpr bool kBulkSums = kFusedQuery == FusedQuery::kUnorderedBulk;
  static constexpr int kStageRowFloats = 72;
  static constexpr int kStageBytes =
      kBulkSums ? kWarpgroups * 64 * kStageRowFloats * 4 : 0;
  // K, V, two Q and two dO buffers, two lse and delta rows, dS^T, the dQ
  // staging tiles, alignment slack.
  static constexpr size_t kSmemBytes = 2 * kKeyBytes + 4 * kQueryBytes +
                                       kStatisticsBytes + kScoreBytes +
                                       kStageBytes + 1024;
  static_assert(kBlockM == 64 || kBlockM == 128, "m64n64 or m64n128");
  static_assert(kHeadDim == 64 || kHeadDim == 128 || kHeadDim == 256,
                "one, two or four panels");
  static_assert(kFused ? kQueryBlocks * kPanels == kWarpgroups
                       : kWarpgroups == 1,
                "one warpgroup, or one per part of dQ");
  static_assert(!kFused || kPart == KeyValuePart::kBoth,
                "the fused modes compute both gradients");
  static_assert(kStatisticsBytes % 1024 == 0, "dS^T 1024-byte aligned");
};

// The dK/dV kernel's launch arguments: the backward's, and where `tma` is
// set, the tensor maps of every group's q and dO rows, through which thread 0
// copies the query tiles. Fused: the float32 dQ buffer (grad_q's element
// offsets) and, ordered, the turn counters, one per grad_q row (element
// offset / head_dim) of which those of each query tile's first row are
// used; both zeroed before the launch.
struct FlashKeyValueWgmmaArgs {
  FlashBackwardArgs base;
  bool tma;
  CUtensorMap q[kMaxTmaGroups];
  CUtensorMap grad_out[kMaxTmaGroups];
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

// The fused mode's dQ product of one query tile, once both warpgroups' dS^T
// are in shared memory at `s_ds`: issues (one commit group) this
// warpgroup's 64 x 64 part of dS K over all the block's keys (K at `s_k`,
// `key_panel` bytes per panel) into `acc`.
template <class Tile>
__device__ __forceinline__ void IssueQueryTileProduct(float (&acc)[32],
                                                      uint32_t s_ds,
                                                      uint32_t s_k,
                                                      uint32_t key_panel) {
  const int warpgroup = WarpUniform(threadIdx.x / 128);
  const int dq_block = warpgroup % Tile::kQueryBlocks;
  const int dq_panel = warpgroup / Tile::kQueryBlocks;
  const SwizzledTileDescriptor a_desc(s_ds + dq_block * (Tile::kBlockN * 128));
  const SwizzledTileDescriptor b_desc(s_k + dq_panel * key_panel);
  WgmmaFence();
#pragma unroll
  for (int kk = 0; kk < Tile::kBlockN / 16; ++kk) {
    WgmmaSSTransposed64x64<Tile::kDtype>(acc, a_desc.At(2048 * kk),
                                         b_desc.At(2048 * kk), kk > 0);
  }
  WgmmaCommit();
}

// The fused mode's dQ step of one query tile (tile `q0`, the block's step
// `t`) once IssueQueryTileProduct's `acc` has landed: `acc` times `scale`
// added into the float32 rows `dq_rows` (`dq_step` apart, `num_rows` of
// them); ordered, in the tile's turn. Every thread of the block calls it.
template <class Tile>
__device__ __forceinline__ void AddQueryTileSums(
    const FlashKeyValueWgmmaArgs& kv_args, const float (&acc)[32],
    float* dq_rows, int64_t dq_step, int q0, int t, int num_rows, float scale) {
  const int tid = threadIdx.x;
  const int warpgroup = tid / 128;
  const int warp = (tid / 32) % 4;
  const int group = (tid % 32) / 4;
  const int pair = tid % 4;
  const int dq_block = warpgroup % Tile::kQueryBlocks;
  const int dq_panel = warpgroup / Tile::kQueryBlocks;
  constexpr bool kOrdered = Tile::kFusedQuery == FusedQuery::kOrdered;
  constexpr int kTilesPerBlock = Tile::kBlockN / Tile::kBlockM;  // R above
  const int head_dim = static_cast<int>(kv_args.base.params.forward.head_dim);
  int* turn = nullptr;
  if (kOrdered) {
    turn = kv_args.turns +
           (dq_rows - kv_args.grad_q_sum + q0 * dq_step) / head_dim;
    if (tid == 0) {
      while (LoadAcquire(turn) != t / kTilesPerBlock) {
      }
    }
    __syncthreads();
  }
  // Accumulator 4 c + e: query row + 8 (e / 2), columns 64 dq_panel + 8 c +
  // 2 pair and the next one (e even).
  const int row = q0 + dq_block * 64 + warp * 16 + group;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    if (row + 8 * h < num_rows) {
      float* out = dq_rows + (row + 8 * h) * dq_step + 64 * dq_panel + 2 * pair;
#pragma unroll
      for (int c = 0; c < 8; ++c) {
        // Columns past head_dim (a multiple of 8) belong to the next row.
        if (64 * dq_panel + 8 * c < head_dim) {
          atomicAdd(reinterpret_cast<float2*>(out + 8 * c),
                    make_float2(acc[4 * c + 2 * h] * scale,
                                acc[4 * c + 2 * h + 1] * scale));
        }
      }
    }
  }
  if (kOrdered) {
    __threadfence();  // the additions before the turn
    __syncthreads();
    if (tid == 0) StoreRelease(turn, t / kTilesPerBlock + 1);
  }
}

// The bulk mode's dQ step of one query tile (tile `q0`) once
// IssueQueryTileProduct's `acc` has landed: `acc` times `scale` through this
// warpgroup's staging tile at `s_stage` (Tile::kStageRowFloats floats a row)
// into the float32 rows `dq_rows` (`dq_step` apart, `num_rows` of them), one
// bulk addition per row issued by the warpgroup's first warp, in any order.
// Every thread of the block calls it; the first warp of each warpgroup waits
// for its copies before the kernel ends (BulkWait).
template <class Tile>
__device__ __forceinline__ void BulkAddQueryTileSums(
    const float (&acc)[32], uint32_t s_stage, float* dq_rows, int64_t dq_step,
    int q0, int num_rows, int head_dim, float scale) {
  constexpr int kRowBytes = Tile::kStageRowFloats * 4;
  const int warpgroup = threadIdx.x / 128;
  const int warp = (threadIdx.x / 32) % 4;
  const int lane = threadIdx.x % 32;
  const int group = lane / 4;
  const int pair = lane % 4;
  const int dq_block = warpgroup % Tile::kQueryBlocks;
  const int dq_panel = warpgroup / Tile::kQueryBlocks;
  const uint32_t stage = s_stage + warpgroup * (64 * kRowBytes);
  // The previous tile's copies have read the staging tile.
  if (warp == 0) BulkWaitRead<0>();
  NamedBarrierSync(1 + warpgroup, 128);
  // Accumulator 4 c + e: row warp 16 + group + 8 (e / 2), columns 8 c +
  // 2 pair and the next one (e even).
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const uint32_t row = stage + (warp * 16 + group + 8 * h) * kRowBytes;
#pragma unroll
    for (int c = 0; c < 8; ++c) {
      asm volatile("st.shared.v2.f32 [%0], {%1, %2};\n" ::"r"(
                       row + (8 * c + 2 * pair) * 4),
                   "f"(acc[4 * c + 2 * h] * scale),
                   "f"(acc[4 * c + 2 * h + 1] * scale)
                   : "memory");
    }
  }
  FenceSharedForAsyncProxy();
  NamedBarrierSync(1 + warpgroup, 128);
  if (warp == 0) {
    // Columns past head_dim (a multiple of 8) belong to the next row.
    const int bytes = 4 * min(64, head_dim - 64 * dq_panel);
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int r = lane + 32 * i;
      const int row = q0 + dq_block * 64 + r;
      if (row < num_rows) {
        BulkAddFloats(dq_rows + row * dq_step + 64 * dq_panel,
                      stage + r * kRowBytes, bytes);
      }
    }
    BulkCommitGroup();
  }
}

template <class Tile>
__global__ void __launch_bounds__(Tile::kThreads, Tile::kMinBlocks)
    FlashKeyValueWgmmaKernel(
        const __grid_constant__ FlashKeyValueWgmmaArgs kv_args) {
#if DA_WGMMA_ENABLED
  const FlashBackwardArgs& args = kv_args.base;
  using T = typename Tile::T;
  constexpr DataType kDtype = Tile::kDtype;
  constexpr int kBlockM = Tile::kBlockM;
  constexpr int kBlockN = Tile::kBlockN;
  constexpr int kPanels = Tile::kPanels;
  constexpr int kQueryBytes = Tile::kQueryBytes;
  constexpr int kScores = kBlockM / 2;  // accumulators of S^T per thread
  // Bytes between the panels of a key and of a query tile.
  constexpr uint32_t kKeyPanel = kBlockN * 128;
  constexpr uint32_t kQueryPanel = kBlockM * 128;

  extern __shared__ __align__(16) unsigned char smem_raw[];
  unsigned char* smem = AlignedSharedBase(smem_raw);
  const uint32_t s_k = SharedAddress(smem);
  const uint32_t s_v = s_k + Tile::kKeyBytes;
  const uint32_t s_q = s_v + Tile::kKeyBytes;   // [2][kQueryBytes]
  const uint32_t s_do = s_q + 2 * kQueryBytes;  // [2][kQueryBytes]
  float* s_lse =
      reinterpret_cast<float*>(smem + 2 * Tile::kKeyBytes + 4 * kQueryBytes);
  float* s_delta = s_lse + 2 * kBlockM;
  const uint32_t s_ds = s_do + 2 * kQueryBytes + Tile::kStatisticsBytes;
  const uint32_t s_stage = s_ds + Tile::kScoreBytes;
  // With TMA: query buffer b's copies complete on the mbarrier at
  // query_full0 + 8 b.
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
    const int warp = tid / 32;
    const int lane = tid % 32;
    const int group = lane / 4;
    const int pair = lane % 4;
    const int warp_first = k_begin + warp * 16;  // first key of the warp
    // This warpgroup's 64 keys of the K and V tiles.
    const int warpgroup = Tile::kWarpgroups == 1 ? 0 : WarpUniform(tid / 128);
    const uint32_t my_k = s_k + warpgroup * 64 * 128;
    const uint32_t my_v = s_v + warpgroup * 64 * 128;

    const T* q_rows = SelectedRow0<const T>(p.q, w);
    const T* do_rows = SelectedRow0<const T>(bp.grad_out, w);
    const int64_t q_step = RowStep(p.q, w);
    const int64_t do_step = RowStep(bp.grad_out, w);
    const RowStatistics stats = MakeRowStatistics(args, w);

    // Starts loading query tile `qt` into buffer `buf`: by TMA from thread 0
    // (completing on the mbarrier of `buf`), or by cp.async from every thread.
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
    // The lse and delta rows go through registers a tile ahead: thread tid
    // fetches row tid of a tile one step before it stores it into the
    // shared buffer, so the global load's latency never stalls the store
    // (storing right after the load cost a load latency per tile).
    static_assert(kBlockM <= Tile::kThreads, "one statistics row per thread");
    float next_lse = 0.0f;
    float next_delta = 0.0f;
    auto fetch_statistics = [&](int qt) {
      if (tid < kBlockM) {
        next_lse = stats.LseLog2(qt * kBlockM + tid);
        if (Tile::kKey) next_delta = stats.Delta(qt * kBlockM + tid);
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
    if constexpr (Tile::kKey) {  // dP^T = V dO^T
      LoadPanelsSwizzled<kBlockN, Tile::kThreads, kPanels>(
          s_v, SelectedRow0<const T>(p.v, w), RowStep(p.v, w), k_begin,
          num_rows, chunks, tid);
    }
    const TileWalk queries =
        QueryTilesOf<kBlockM>(args.sparse, w, k_begin, num_rows, p.is_causal);
    const int num_tiles = queries.count;
    // Ordered: step t visits query tile (R w.block + t) mod query_tiles (the
    // causal walk starts there and ends before it would wrap).
    const int query_tiles = (num_rows + kBlockM - 1) / kBlockM;
    auto tile_at = [&](int t) {
      return Tile::kFusedQuery == FusedQuery::kOrdered
                 ? (kBlockN / kBlockM * w.block + t) % query_tiles
                 : queries.Tile(t);
    };
    float* dq_rows = nullptr;
    int64_t dq_step = 0;
    if (Tile::kFused) {
      dq_rows = kv_args.grad_q_sum + (SelectedRow0<T>(bp.grad_q, w) -
                                      static_cast<T*>(bp.grad_q.data));
      dq_step = RowStep(bp.grad_q, w);
    }
    // A TMA copy must not outlive the block: none for an empty walk.
    if (!tma || num_tiles > 0) load_query_tile(tile_at(0), 0);
    CpAsyncCommit();
    fetch_statistics(tile_at(0));
    store_statistics(0);
    if (1 < num_tiles) fetch_statistics(tile_at(1));

    float acc_dv[kPanels][32];  // columns 64 p .. 64 p + 63 in acc_dv[p]
    float acc_dk[kPanels][32];
#pragma unroll
    for (int panel = 0; panel < kPanels; ++panel) {
#pragma unroll
      for (int i = 0; i < 32; ++i) acc_dv[panel][i] = acc_dk[panel][i] = 0.0f;
    }
    float st[kScores];                    // S^T: keys x queries
    float dpt[kScores];                   // dP^T / c
    float dq_acc[Tile::kFused ? 32 : 1];  // the fused mode's part of dS K
    const float scale_log2 = p.softmax_scale * kLog2e;

    for (int t = 0; t < num_tiles; ++t) {
      const int qt = tile_at(t);
      const int buf = WarpUniform(t & 1);
      if (t + 1 < num_tiles) {
        load_query_tile(tile_at(t + 1), buf ^ 1);
        CpAsyncCommit();
        store_statistics(buf ^ 1);
        if (t + 2 < num_tiles) fetch_statistics(tile_at(t + 2));
      }
      if (t + 1 < num_tiles && !tma) {
        CpAsyncWait<1>();
      } else {
        CpAsyncWait<0>();  // with TMA only K and V went through cp.async
      }
      if (tma) MbarrierWait(query_full0 + 8 * buf, (t >> 1) & 1);
      FenceSharedForAsyncProxy();
      __syncthreads();  // K, V (first tile), Q, dO, lse and delta landed

      const int q0 = qt * kBlockM;
      const uint32_t q_tile = s_q + buf * kQueryBytes;
      const uint32_t do_tile = s_do + buf * kQueryBytes;
      const float* tlse = s_lse + buf * kBlockM;
      const float* tdelta = s_delta + buf * kBlockM;
      // S^T, then dP^T while P^T is computed, then dV += P^T dO and
      // dK += dS^T Q (dO and Q MN-major); each only where the part needs it.
      WgmmaFence();
      WgmmaRowProducts<kDtype, kBlockM, kPanels>(st, my_k, kKeyPanel, q_tile,
                                                 kQueryPanel);
      WgmmaCommit();
      if constexpr (Tile::kKey) {
        WgmmaRowProducts<kDtype, kBlockM, kPanels>(dpt, my_v, kKeyPanel,
                                                   do_tile, kQueryPanel);
        WgmmaCommit();
        WgmmaWait<1>();  // S^T landed; dP^T runs while P^T is computed
      } else {
        WgmmaWait<0>();
      }

      // P^T into st; then dS^T into dpt in two halves of the query tile: a
      // half's dV += P^T dO and dK += dS^T Q are issued as soon as it is
      // packed, so the tensor cores work while the other half is computed.
      const bool need_mask = p.is_causal && q0 < warp_first + 15;
      constexpr int kHalf = kScores / 2;        // accumulators per half
      constexpr int kHalfSteps = kBlockM / 32;  // k16 steps per half
      uint32_t ap[kBlockM / 16][4];
      uint32_t ads[kBlockM / 16][4];
      // Accumulators i and i + 1 hold adjacent queries: one 8-byte load
      // brings both rows' statistics.
#pragma unroll
      for (int i = 0; i < kScores; i += 2) {
        const float2 lse =
            *reinterpret_cast<const float2*>(tlse + (i / 4) * 8 + 2 * pair);
        st[i] = Exp2Spread<Tile::kFmaExpEvery>(st[i] * scale_log2 - lse.x, i);
        st[i + 1] = Exp2Spread<Tile::kFmaExpEvery>(
            st[i + 1] * scale_log2 - lse.y, i + 1);
      }
      // The causal mask as a pass of its own over the diagonal tiles: tested
      // inside the loop above, its compares and selects were if-converted
      // and ran on every tile (~170 of ~1,130 instructions per tile).
      if (need_mask) {
        ZeroMaskedTransposed<kScores>(st, warp_first + group, q0 + 2 * pair);
      }
      WgmmaWait<0>();  // dP^T landed
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        if constexpr (Tile::kKey) {
#pragma unroll
          for (int i = half * kHalf; i < (half + 1) * kHalf; i += 2) {
            const float2 delta = *reinterpret_cast<const float2*>(
                tdelta + (i / 4) * 8 + 2 * pair);
            dpt[i] = st[i] * (dpt[i] * p.output_scale - delta.x);
            dpt[i + 1] = st[i + 1] * (dpt[i + 1] * p.output_scale - delta.y);
          }
          PackScoreSteps<kDtype>(dpt, ads, half * kHalfSteps, kHalfSteps);
        }
        if constexpr (Tile::kValue) {
          PackScoreSteps<kDtype>(st, ap, half * kHalfSteps, kHalfSteps);
        }
        if constexpr (Tile::kFused) {
          StoreScoreSteps<kBlockN>(s_ds, ads, warp * 16 + group, pair,
                                   half * kHalfSteps, kHalfSteps);
          if (half == 1) {
            // dS K ahead of the second half's dV and dK products, so that
            // its sums are added while those run.
            FenceSharedForAsyncProxy();
            __syncthreads();  // both warpgroups' dS^T written
            IssueQueryTileProduct<Tile>(dq_acc, s_ds, s_k, kKeyPanel);
          }
        }
        WgmmaFence();
        if constexpr (Tile::kValue) {
          WgmmaAccumulatePanels<kDtype>(acc_dv, ap, do_tile, kQueryPanel,
                                        half * kHalfSteps, kHalfSteps);
        }
        if constexpr (Tile::kKey) {
          WgmmaAccumulatePanels<kDtype>(acc_dk, ads, q_tile, kQueryPanel,
                                        half * kHalfSteps, kHalfSteps);
        }
        WgmmaCommit();
      }
      if constexpr (Tile::kFused) {
        WgmmaWait<1>();  // dS K landed (groups retire in order)
        WgmmaPinAccumulators(dq_acc);
        if constexpr (Tile::kBulkSums) {
          BulkAddQueryTileSums<Tile>(dq_acc, s_stage, dq_rows, dq_step, q0,
                                     num_rows, static_cast<int>(p.head_dim),
                                     p.softmax_scale);
        } else {
          AddQueryTileSums<Tile>(kv_args, dq_acc, dq_rows, dq_step, q0, t,
                                 num_rows, p.softmax_scale);
        }
      }
      WgmmaWait<0>();
      __syncthreads();  // every warp is done with `buf` before it is refilled
    }

    if constexpr (Tile::kBulkSums) {
      if (warp % 4 == 0) BulkWait<0>();  // the staging tiles outlive no copy
    }
    DrainEmptyWalk(queries);
    // Epilogue: stage dV and dK through this warp's own rows of the V and K
    // tiles (no wgmma reads them any more).
    if constexpr (Tile::kValue) {
      StoreAccumulatorPanels<kDtype>(
          smem + Tile::kKeyBytes + warp * 16 * 128, kKeyPanel, acc_dv,
          p.output_scale, p.output_scale, SelectedRow0<T>(bp.grad_v, w),
          RowStep(bp.grad_v, w), warp_first, num_rows, chunks, lane);
    }
    if constexpr (Tile::kKey) {
      StoreAccumulatorPanels<kDtype>(
          smem + warp * 16 * 128, kKeyPanel, acc_dk, p.softmax_scale,
          p.softmax_scale, SelectedRow0<T>(bp.grad_k, w), RowStep(bp.grad_k, w),
          warp_first, num_rows, chunks, lane);
    }
  }
  if constexpr (Tile::kValue) {
    ZeroUnselectedRows(SegmentStart<T>(bp.grad_v, w), bp.grad_v.stride_n, w,
                       k_begin, k_end, chunks, nullptr, tid, Tile::kThreads);
  }
  if constexpr (Tile::kKey) {
    ZeroUnselectedRows(SegmentStart<T>(bp.grad_k, w), bp.grad_k.stride_n, w,
                       k_begin, k_end, chunks, nullptr, tid, Tile::kThreads);
  }
#else
  __trap();  // never launched: WgmmaAvailable() is false without sm_90a
#endif
}

// Returns the generic pointer of shared address `addr` inside the block's
// dynamic shared memory that starts at `base` (shared address of `base`).
__device__ __forceinline__ const unsigned char* SharedPointer(
    const unsigned char* base, uint32_t addr) {
  return base + (addr - SharedAddress(base));
}

// Returns D = rowsum(dO * out) of this thread's two accumulator rows, `row`
// and `row` + 8, of two swizzled tiles of kPanels panels (`panel_bytes`
// apart) holding dO and out. The four threads of a row (`pair` 0..3) each
// sum two 16-byte chunks of every panel and combine by shuffles: float32
// sums of the 16-bit products in a fixed order. All 32 lanes call it.
template <typename T, int kPanels>
__device__ __forceinline__ void RowDeltasOfTiles(const unsigned char* grad_out,
                                                 const unsigned char* out,
                                                 int panel_bytes, int row,
                                                 int pair, float (&delta)[2]) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float dot = 0.0f;
#pragma unroll
    for (int panel = 0; panel < kPanels; ++panel) {
#pragma unroll
      for (int c = 2 * pair; c < 2 * pair + 2; ++c) {
        const int offset = panel * panel_bytes + SwizzledOffset(row + 8 * h, c);
        dot += Dot8<T>(*reinterpret_cast<const uint4*>(out + offset),
                       *reinterpret_cast<const uint4*>(grad_out + offset));
      }
    }
    dot += __shfl_xor_sync(0xffffffffu, dot, 1);
    dot += __shfl_xor_sync(0xffffffffu, dot, 2);
    delta[h] = dot;
  }
}

// Runs step(t, parity) for the tiles t of [0, count), parity = t & 1 (the
// double buffer a tile uses), warp-uniform (WarpUniform) so that the wgmma
// descriptors of the tile's buffers stay in uniform registers. With
// kConstantParity the loop is unrolled by two and each call's parity is a
// compile-time constant instead.
template <bool kConstantParity, class Step>
__device__ __forceinline__ void ForEachTile(int count, Step&& step) {
  if constexpr (kConstantParity) {
    for (int t = 0; t < count; t += 2) {
      step(t, std::integral_constant<int, 0>{});
      if (t + 1 < count) step(t + 1, std::integral_constant<int, 1>{});
    }
  } else {
    for (int t = 0; t < count; ++t) step(t, WarpUniform(t & 1));
  }
}

// Shape of FlashQueryWgmmaKernel: 64 queries per block, kBlockN keys per
// tile (64 or 128), head_dim padded to kHeadDim (64, 128 or 256);
// kFmaExpEveryT:
// which exponentials go to the FMA pipe (Exp2Spread).
template <DataType kDtypeT, int kBlockNT, int kMinBlocksT, int kHeadDimT = 64,
          int kFmaExpEveryT = 0>
struct WgmmaQueryTile {
  using T = typename Element<kDtypeT>::Type;
  static constexpr DataType kDtype = kDtypeT;
  static constexpr int kHeadDim = kHeadDimT;
  static constexpr int kPanels = kHeadDim / 64;
  static constexpr int kBlockM = 64;  // queries per block
  static constexpr int kBlockN = kBlockNT;
  static constexpr int kMinBlocks = kMinBlocksT;
  static constexpr int kFmaExpEvery = kFmaExpEveryT;
  static constexpr int kThreads = 128;
  static constexpr int kQueryBytes = kBlockM * 128 * kPanels;
  static constexpr int kKeyBytes = kBlockN * 128 * kPanels;
  // ForEachTile's constant parities: 2-3% faster than a warp-uniform one at
  // head_dim 64 and 128 on an H100, 3% slower at 256
  // (docs/PERFORMANCE_CUDA.md).
  static constexpr bool kConstantParity = kPanels <= 2;
  // Q, dO, out, two K and two V buffers, alignment slack. At head_dim 128
  // this is 113 KiB: two blocks fill an SM's 228 KiB with the 1 KiB each
  // block reserves; at head_dim 256 with 64-key tiles, 225 KiB: one block.
  static constexpr size_t kSmemBytes = 3 * kQueryBytes + 4 * kKeyBytes + 1024;
  static_assert(kBlockN == 64 || kBlockN == 128, "m64n64 or m64n128");
  static_assert(kHeadDim == 64 || kHeadDim == 128 || kHeadDim == 256,
                "one, two or four panels");
  static_assert(kSmemBytes <= 227 * 1024, "an SM's shared memory per block");
};

// The dQ kernel's launch arguments: the backward's, and where `tma` is set,
// the tensor maps of every group's k and v rows, through which thread 0
// copies the key tiles.
struct FlashQueryWgmmaArgs {
  FlashBackwardArgs base;
  bool tma;
  CUtensorMap k[kMaxTmaGroups];
  CUtensorMap v[kMaxTmaGroups];
};

template <class Tile>
__global__ void __launch_bounds__(Tile::kThreads, Tile::kMinBlocks)
    FlashQueryWgmmaKernel(const __grid_constant__ FlashQueryWgmmaArgs q_args) {
#if DA_WGMMA_ENABLED
  const FlashBackwardArgs& args = q_args.base;
  using T = typename Tile::T;
  constexpr DataType kDtype = Tile::kDtype;
  constexpr int kBlockM = Tile::kBlockM;
  constexpr int kBlockN = Tile::kBlockN;
  constexpr int kPanels = Tile::kPanels;
  constexpr int kKeyBytes = Tile::kKeyBytes;
  constexpr int kScores = kBlockN / 2;  // accumulators of S per thread
  // Bytes between the panels of a query and of a key tile.
  constexpr uint32_t kQueryPanel = kBlockM * 128;
  constexpr uint32_t kKeyPanel = kBlockN * 128;

  extern __shared__ __align__(16) unsigned char smem_raw[];
  unsigned char* smem = AlignedSharedBase(smem_raw);
  const uint32_t s_q = SharedAddress(smem);
  const uint32_t s_do = s_q + Tile::kQueryBytes;
  const uint32_t s_k = s_do + Tile::kQueryBytes;  // [2][kKeyBytes]
  const uint32_t s_v = s_k + 2 * kKeyBytes;       // [2][kKeyBytes]
  const uint32_t s_o = s_v + 2 * kKeyBytes;
  // With TMA: key buffer b's copies (K and V) complete on the mbarrier at
  // key_full0 + 8 b.
  const uint32_t key_full0 = SlackTail(smem_raw, Tile::kSmemBytes);
  const bool tma = q_args.tma;
  if (tma && threadIdx.x == 0) {
    MbarrierInit(key_full0, 1);
    MbarrierInit(key_full0 + 8, 1);
  }
  __syncthreads();

  const BackwardParams& bp = args.params;
  const ForwardParams& p = bp.forward;
  const WorkItem w = DecodeBlock(args.block_begin, args.general, p, blockIdx.x,
                                 kBlockM, p.is_causal);
  const int num_rows = w.length;
  const int chunks = static_cast<int>(p.head_dim / 8);
  const int tid = threadIdx.x;
  const int j_begin = w.block * kBlockM;
  const int j_end = min(j_begin + kBlockM, num_rows);

  if (num_rows > 0) {
    const int warp = tid / 32;
    const int lane = tid % 32;
    const int group = lane / 4;
    const int pair = lane % 4;
    const int warp_first = j_begin + warp * 16;  // first query of the warp

    const T* k_rows = SelectedRow0<const T>(p.k, w);
    const T* v_rows = SelectedRow0<const T>(p.v, w);
    const int64_t k_step = RowStep(p.k, w);
    const int64_t v_step = RowStep(p.v, w);

    LoadPanelsSwizzled<kBlockM, Tile::kThreads, kPanels>(
        s_q, SelectedRow0<const T>(p.q, w), RowStep(p.q, w), j_begin, num_rows,
        chunks, tid);
    LoadPanelsSwizzled<kBlockM, Tile::kThreads, kPanels>(
        s_do, SelectedRow0<const T>(bp.grad_out, w), RowStep(bp.grad_out, w),
        j_begin, num_rows, chunks, tid);
    LoadPanelsSwizzled<kBlockM, Tile::kThreads, kPanels>(
        s_o, SelectedRow0<const T>(p.out, w), RowStep(p.out, w), j_begin,
        num_rows, chunks, tid);
    const int key_limit = p.is_causal ? j_end : num_rows;
    const TileWalk keys =
        KeyTilesOf<kBlockN>(args.sparse, w, j_begin, key_limit);
    const int num_tiles = keys.count;
    // Thread 0's TMA copies of the key tile at `key0` into buffer `buf`.
    auto load_key_tile = [&](int key0, int buf) {
      const uint32_t bar = key_full0 + 8 * buf;
      const int segment =
          static_cast<int>(w.segment_row / p.groups[w.group].segment_length);
      MbarrierArriveExpectBytes(bar, 2 * kKeyBytes);
#pragma unroll
      for (int panel = 0; panel < kPanels; ++panel) {
        TmaLoadSelectedRows(s_k + buf * kKeyBytes + panel * kKeyPanel,
                            &q_args.k[w.group], bar, 64 * panel, key0,
                            static_cast<int>(w.head), segment,
                            static_cast<int>(w.batch));
        TmaLoadSelectedRows(s_v + buf * kKeyBytes + panel * kKeyPanel,
                            &q_args.v[w.group], bar, 64 * panel, key0,
                            static_cast<int>(w.head), segment,
                            static_cast<int>(w.batch));
      }
    };
    if (!tma) {
      LoadPanelsSwizzled<kBlockN, Tile::kThreads, kPanels>(
          s_k, k_rows, k_step, keys.Tile(0) * kBlockN, num_rows, chunks, tid);
      LoadPanelsSwizzled<kBlockN, Tile::kThreads, kPanels>(
          s_v, v_rows, v_step, keys.Tile(0) * kBlockN, num_rows, chunks, tid);
    } else if (tid == 0 && num_tiles > 0) {
      // A TMA copy must not outlive the block: none for an empty walk.
      load_key_tile(keys.Tile(0) * kBlockN, 0);
    }
    CpAsyncCommit();

    // Row statistics of this thread's two rows; D comes from the out and dO
    // tiles during the first key tile.
    const RowStatistics stats = MakeRowStatistics(args, w);
    float row_lse[2];
    float row_delta[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      row_lse[h] = stats.LseLog2(warp_first + group + h * 8);
    }

    float acc_dq[kPanels][32];  // columns 64 p .. 64 p + 63 in acc_dq[p]
#pragma unroll
    for (int panel = 0; panel < kPanels; ++panel) {
#pragma unroll
      for (int i = 0; i < 32; ++i) acc_dq[panel][i] = 0.0f;
    }
    float s[kScores];
    float dp[kScores];
    const float scale_log2 = p.softmax_scale * kLog2e;

    ForEachTile<Tile::kConstantParity>(num_tiles, [&](const int tile,
                                                      auto parity) {
      const int buf = parity;
      // Q, dO (first tile), K and V tiles landed; the next ones are loading.
      if (tma) {
        if (tid == 0 && tile + 1 < num_tiles) {
          load_key_tile(keys.Tile(tile + 1) * kBlockN, buf ^ 1);
        }
        CpAsyncWait<0>();  // Q, dO and out (first tile)
        MbarrierWait(key_full0 + 8 * buf, (tile >> 1) & 1);
        FenceSharedForAsyncProxy();
        __syncthreads();
      } else {
        AdvanceKeyValueTiles<kBlockN, Tile::kThreads, kPanels>(
            tile + 1 < num_tiles, s_k + (buf ^ 1) * kKeyBytes,
            s_v + (buf ^ 1) * kKeyBytes, k_rows, k_step, v_rows, v_step,
            keys.Tile(tile + 1) * kBlockN, num_rows, chunks, tid);
      }

      const int key0 = keys.Tile(tile) * kBlockN;
      const uint32_t k_tile = s_k + buf * kKeyBytes;
      // S, then dP while P is computed, then dQ += dS K (K MN-major).
      WgmmaFence();
      WgmmaRowProducts<kDtype, kBlockN, kPanels>(s, s_q, kQueryPanel, k_tile,
                                                 kKeyPanel);
      WgmmaCommit();
      WgmmaRowProducts<kDtype, kBlockN, kPanels>(
          dp, s_do, kQueryPanel, s_v + buf * kKeyBytes, kKeyPanel);
      WgmmaCommit();
      if (tile == 0) {
        // While the tensor cores work: D = rowsum(dO * out) of this thread's
        // rows, for this kernel and (through args.delta) the key/value one.
        RowDeltasOfTiles<T, kPanels>(SharedPointer(smem, s_do),
                                     SharedPointer(smem, s_o), kQueryPanel,
                                     warp * 16 + group, pair, row_delta);
        float* delta_rows = DeltaSegment(args, w) + w.first;
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int row = warp_first + group + h * 8;
          if (pair == 0 && row < num_rows) {
            delta_rows[row * w.step] = row_delta[h];
          }
        }
      }
      WgmmaWait<1>();  // S landed

      const bool need_mask = key0 + kBlockN > num_rows ||
                             (p.is_causal && key0 + kBlockN - 1 > warp_first);
#pragma unroll
      for (int i = 0; i < kScores; ++i) {
        s[i] = Exp2Spread<Tile::kFmaExpEvery>(
            s[i] * scale_log2 - row_lse[(i >> 1) & 1], i);
      }
      // Masked keys as a pass of their own (see the key/value kernel).
      if (need_mask) {
        ZeroMaskedScores<kScores>(s, key0 + 2 * pair, warp_first + group,
                                  num_rows, p.is_causal);
      }
      WgmmaWait<0>();  // dP landed
      // dS in two halves of the key tile, each half's dQ += dS K issued as
      // soon as it is packed.
      constexpr int kHalf = kScores / 2;
      constexpr int kHalfSteps = kBlockN / 32;
      uint32_t ads[kBlockN / 16][4];
#pragma unroll
      for (int half = 0; half < 2; ++half) {
#pragma unroll
        for (int i = half * kHalf; i < (half + 1) * kHalf; ++i) {
          dp[i] = s[i] * (dp[i] * p.output_scale - row_delta[(i >> 1) & 1]);
        }
        PackScoreSteps<kDtype>(dp, ads, half * kHalfSteps, kHalfSteps);
        WgmmaFence();
        WgmmaAccumulatePanels<kDtype>(acc_dq, ads, k_tile, kKeyPanel,
                                      half * kHalfSteps, kHalfSteps);
        WgmmaCommit();
      }
      WgmmaWait<0>();
      __syncthreads();  // every warp is done with `buf` before it is refilled
    });

    DrainEmptyWalk(keys);
    // Epilogue through this warp's own rows of the Q tile.
    StoreAccumulatorPanels<kDtype>(
        smem + warp * 16 * 128, kQueryPanel, acc_dq, p.softmax_scale,
        p.softmax_scale, SelectedRow0<T>(bp.grad_q, w), RowStep(bp.grad_q, w),
        warp_first, num_rows, chunks, lane);
  }
  ZeroUnselectedRows(SegmentStart<T>(bp.grad_q, w), bp.grad_q.stride_n, w,
                     j_begin, j_end, chunks, nullptr, tid, Tile::kThreads);
#else
  __trap();  // never launched: WgmmaAvailable() is false without sm_90a
#endif
}

// Launches FlashKeyValueWgmmaKernel<Tile>; `general` is the launch's problem
// list (ProblemTable::AddBlocks(Tile::kBlockN)), or null for the closed form.
// The query tiles travel by TMA on the closed form where `allow_tma` and
// every group's q and dO views encode (EncodeSelectedRowMap), by cp.async
// otherwise.
template <class Tile>
cudaError_t LaunchFlashKeyValueWgmmaCopyingBy(bool allow_tma,
                                              const FlashBackwardArgs& base,
                                              cudaStream_t stream,
                                              const ProblemIndex& general) {
  FlashKeyValueWgmmaArgs args;
  args.base = base;
  args.base.general = general;
  args.grad_q_sum = nullptr;
  args.turns = nullptr;
  const ForwardParams& p = base.params.forward;
  const int64_t blocks =
      LaunchBlocks(p, general, Tile::kBlockN, args.base.block_begin);
  args.tma = allow_tma && general.problems == nullptr &&
             EncodeSelectedRowMapPairs(p, p.q, base.params.grad_out,
                                       Tile::kBlockM, args.q, args.grad_out);
  return LaunchWithSmem<Tile>(FlashKeyValueWgmmaKernel<Tile>, args, blocks,
                              stream);
}

template <class Tile>
cudaError_t LaunchFlashKeyValueWgmma(
    const FlashBackwardArgs& base, cudaStream_t stream,
    const ProblemIndex& general = ProblemIndex{}) {
  return LaunchFlashKeyValueWgmmaCopyingBy<Tile>(true, base, stream, general);
}

// Launches FlashKeyValueWgmmaKernel<Tile> in a fused mode on the closed
// form, adding dQ into `grad_q_sum` (`turns`: FlashKeyValueWgmmaArgs).
template <class Tile>
cudaError_t LaunchFlashFusedBackward(const FlashBackwardArgs& base,
                                     float* grad_q_sum, int* turns,
                                     cudaStream_t stream) {
  static_assert(Tile::kFused, "a FusedQuery mode");
  FlashKeyValueWgmmaArgs args;
  args.base = base;
  args.base.general = ProblemIndex{};
  const ForwardParams& p = base.params.forward;
  const int64_t blocks =
      LaunchBlocks(p, ProblemIndex{}, Tile::kBlockN, args.base.block_begin);
  args.tma = EncodeSelectedRowMapPairs(p, p.q, base.params.grad_out,
                                       Tile::kBlockM, args.q, args.grad_out);
  args.grad_q_sum = grad_q_sum;
  args.turns = turns;
  return LaunchWithSmem<Tile>(FlashKeyValueWgmmaKernel<Tile>, args, blocks,
                              stream);
}

// Rounds `pairs` pairs of float32 dQ sums to grad_q's dtype, element for
// element.
template <DataType kDtype>
__global__ void RoundQuerySumsKernel(const float2* sums, uint32_t* grad_q,
                                     int64_t pairs) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
       i < pairs; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float2 sum = sums[i];
    grad_q[i] = PackPair<kDtype>(sum.x, sum.y);
  }
}

// The whole fused backward on `stream`: zeroes the float32 dQ sums and the
// turn counters, runs FlashKeyValueWgmmaKernel<Tile> in its fused mode and
// rounds the sums into grad_q (contiguous: fused_backward.h). `delta` holds
// the delta rows already.
template <class Tile>
cudaError_t RunFusedBackward(const FlashBackwardArgs& args, float* grad_q_sum,
                             int* turns, cudaStream_t stream) {
  const ForwardParams& p = args.params.forward;
  const int64_t rows = p.batch * p.seq_len * p.num_heads;
  const int64_t count = rows * p.head_dim;
  cudaError_t error =
      cudaMemsetAsync(grad_q_sum, 0, count * sizeof(float), stream);
  if (error == cudaSuccess && Tile::kFusedQuery == FusedQuery::kOrdered) {
    error = cudaMemsetAsync(turns, 0, rows * sizeof(int), stream);
  }
  if (error == cudaSuccess) {
    error = LaunchFlashFusedBackward<Tile>(args, grad_q_sum, turns, stream);
  }
  if (error != cudaSuccess) return error;
  RoundQuerySumsKernel<Tile::kDtype><<<1024, 256, 0, stream>>>(
      reinterpret_cast<const float2*>(grad_q_sum),
      static_cast<uint32_t*>(args.params.grad_q.data), count / 2);
  return cudaGetLastError();
}

// Launches FlashQueryWgmmaKernel<Tile>; `general` as for
// LaunchFlashKeyValueWgmma with Tile::kBlockM rows per block. The key tiles
// travel by TMA under the same conditions as the key/value kernel's query
// tiles.
template <class Tile>
cudaError_t LaunchFlashQueryWgmmaCopyingBy(bool allow_tma,
                                           const FlashBackwardArgs& base,
                                           cudaStream_t stream,
                                           const ProblemIndex& general) {
  FlashQueryWgmmaArgs args;
  args.base = base;
  args.base.general = general;
  const ForwardParams& p = base.params.forward;
  const int64_t blocks =
      LaunchBlocks(p, general, Tile::kBlockM, args.base.block_begin);
  args.tma =
      allow_tma && general.problems == nullptr &&
      EncodeSelectedRowMapPairs(p, p.k, p.v, Tile::kBlockN, args.k, args.v);
  return LaunchWithSmem<Tile>(FlashQueryWgmmaKernel<Tile>, args, blocks,
                              stream);
}

template <class Tile>
cudaError_t LaunchFlashQueryWgmma(
    const FlashBackwardArgs& base, cudaStream_t stream,
    const ProblemIndex& general = ProblemIndex{}) {
  return LaunchFlashQueryWgmmaCopyingBy<Tile>(true, base, stream, general);
}

}  // namespace gpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CUDA_FLASH_BACKWARD_WGMMA_CUH_
