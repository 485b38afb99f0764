// File: flash_forward_wgmma.cuh
//
// The fused strided forward kernel for Hopper (sm_90a), head_dim 64 or 128: the
// contract of flash_forward.cuh (one thread block per (problem, head, block
// of query rows); out * (1 / G), the log-sum-exp, zeros for the positions
// that are not rows of the problem) with the two products on the
// warpgroup tensor cores (wgmma.cuh). Each warpgroup owns 64 query rows:
// S = Q K^T is one m64n128 (or m64n64) product per k16 step with Q and K read
// straight from 128-byte-swizzled shared tiles, and O += P V takes P from
// registers (the S accumulators rounded to the input type) and V from shared
// memory. K and V tiles of 64 or 128 rows are double-buffered with cp.async.
// Within a warpgroup the products of one key tile overlap the softmax of the
// next: S(t + 1) = Q K^T and O += P(t) V(t) are issued back to back, and the
// probabilities of t + 1 are computed while P(t) V(t) runs.
// At head_dim 128 every tile is two 64-column panels (wgmma.cuh): S takes
// eight k16 steps, four per panel, and O is two m64n64 accumulators, one per
// panel of V.
//
// Included by the per-(head_dim, dtype) instantiation files only.

#ifndef KERNELS_CUDA_FLASH_FORWARD_WGMMA_CUH_
#define KERNELS_CUDA_FLASH_FORWARD_WGMMA_CUH_

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/device_primitives.cuh"
#include "kernels/cuda/flash_attention.h"
#include "kernels/cuda/flash_common.cuh"
#include "kernels/cuda/swizzled_tile.cuh"
#include "kernels/cuda/wgmma.cuh"
#include "kernels/dilated_params.h"

namespace dilated {
namespace kernels {
namespace gpu {

// Compile-time shape: kWarpgroups x 64 query rows per block, kBlockN-key
// tiles (64 or 128), head_dim padded to kHeadDim (64 or 128). With
// kQInRegisters each thread keeps its rows of Q as wgmma A operands (4
// registers per k16 step) and S = Q K^T reads only K from shared memory.
// kFmaExpEveryT: which exponentials go to the FMA pipe (Exp2Spread).
template <DataType kDtypeT, int kWarpgroupsT, int kBlockNT, int kMinBlocksT,
          int kHeadDimT = 64, bool kQInRegistersT = false,
          int kFmaExpEveryT = 0>
struct WgmmaForwardTile {
  using T = typename Element<kDtypeT>::Type;
  static constexpr DataType kDtype = kDtypeT;
  static constexpr int kHeadDim = kHeadDimT;
  static constexpr int kPanels = kHeadDim / 64;  // 64-column panels
  static constexpr int kWarpgroups = kWarpgroupsT;
  static constexpr int kMinBlocks = kMinBlocksT;
  static constexpr int kBlockM = 64 * kWarpgroups;
  static constexpr int kBlockN = kBlockNT;
  static constexpr int kScores = kBlockN / 2;  // S accumulators per thread
  static constexpr int kThreads = 128 * kWarpgroups;
  static constexpr bool kQInRegisters = kQInRegistersT;
  static constexpr int kFmaExpEvery = kFmaExpEveryT;
  // k16 steps of Q held in registers (one unused step without them).
  static constexpr int kQSteps = kQInRegisters ? 4 * kPanels : 1;
  static constexpr int kRowBytes = kHeadDim * 2;  // 128 bytes per panel
  static constexpr int kQBytes = kBlockM * kRowBytes;
  static constexpr int kTileBytes = kBlockN * kRowBytes;
  // Q, two K and two V buffers, and slack to align the base to 1024 bytes.
  static constexpr size_t kSmemBytes = kQBytes + 4 * kTileBytes + 1024;
  static_assert(kBlockN == 64 || kBlockN == 128, "m64n64 or m64n128 scores");
  static_assert(kHeadDim == 64 || kHeadDim == 128, "one or two panels");
};

// Issues and commits S = Q K^T for one warpgroup: `q_rows` is its 64 rows of
// the Q tile (or, with Tile::kQInRegisters, `q_frag` its A operands), `k_tile`
// a K buffer; four k16 steps of 32 bytes along the swizzled rows of each
// 64-column panel.
template <class Tile>
__device__ __forceinline__ void IssueScores(
    float (&s)[Tile::kScores], uint32_t q_rows,
    const uint32_t (&q_frag)[Tile::kQSteps][4], uint32_t k_tile) {
  if constexpr (Tile::kQInRegisters) {
#pragma unroll
    for (int panel = 0; panel < Tile::kPanels; ++panel) {
      const SwizzledTileDescriptor k(k_tile + panel * Tile::kBlockN * 128);
#pragma unroll
      for (int ks = 0; ks < 4; ++ks) {
        WgmmaRSKMajor<Tile::kDtype, Tile::kBlockN>(
            s, q_frag[4 * panel + ks], k.At(32 * ks), panel > 0 || ks > 0);
      }
    }
  } else {
    WgmmaRowProducts<Tile::kDtype, Tile::kBlockN, Tile::kPanels>(
        s, q_rows, Tile::kBlockM * 128, k_tile, Tile::kBlockN * 128);
  }
  WgmmaCommit();
}

// Loads one warp's 16 rows of the 64 at `q_rows` (a warpgroup's rows of the
// swizzled Q tile, panels `panel_bytes` apart) as the A operands of the
// kSteps k16 steps of S = Q K^T, four per panel (ldmatrix: lanes 0-15 address
// rows 0-15 at the step's first 8 columns, lanes 16-31 at its last 8).
template <int kSteps>
__device__ __forceinline__ void LoadQueryFragments(
    uint32_t (&q_frag)[kSteps][4], uint32_t q_rows, int panel_bytes, int warp,
    int lane) {
  const int row = warp * 16 + lane % 16;
#pragma unroll
  for (int step = 0; step < kSteps; ++step) {
    const int chunk = 2 * (step % 4) + lane / 16;
    LdMatrixX4(q_frag[step],
               q_rows + (step / 4) * panel_bytes + SwizzledOffset(row, chunk));
  }
}

// Issues and commits O += P V: P in the A-register layout, V (the buffer at
// `v_tile`) MN-major, 16 key rows (2048 bytes) per k16 step, one m64n64
// product per 64-column panel of V.
template <class Tile>
__device__ __forceinline__ void IssueValues(
    float (&acc_o)[Tile::kPanels][32],
    const uint32_t (&prob)[Tile::kBlockN / 16][4], uint32_t v_tile) {
  WgmmaAccumulatePanels<Tile::kDtype>(acc_o, prob, v_tile, Tile::kBlockN * 128,
                                      0, Tile::kBlockN / 16);
  WgmmaCommit();
}

// The online softmax of one thread's two rows of a warpgroup (h = 0: row
// `group` of its warp, h = 1: row `group` + 8), in the log2 domain.
struct OnlineSoftmaxRows {
  float row_max[2];
  float row_sum[2];  // this thread's partial sums
  int num_rows;      // keys at or past it are masked
  int warp_first;    // the first query row of this thread's warp
  int group;
  int pair;
  bool is_causal;
  float scale_log2;  // softmax scale * log2(e)

  // The state of a warp's rows before the first key tile: rows from
  // `warp_first`, keys at or past `num_rows` masked.
  static __device__ __forceinline__ OnlineSoftmaxRows
  Start(int num_rows, int warp_first, int lane, bool is_causal,
        float softmax_scale) {
    const float kMinusInf = -__int_as_float(0x7f800000);
    return OnlineSoftmaxRows{{kMinusInf, kMinusInf},
                             {0.0f, 0.0f},
                             num_rows,
                             warp_first,
                             lane / 4,
                             lane % 4,
                             is_causal,
                             softmax_scale * kLog2e};
  }

  // Turns the raw scores `s` of the key tile at `key0` into probabilities
  // (keys >= num_rows, and keys after the query when causal, get 0) and sets
  // `alpha`, the factor the output accumulators of each row take before
  // this tile's P V; returns whether some alpha of the warp is not 1.
  // kFmaExpEvery: which exponentials go to the FMA pipe (Exp2Spread).
  template <int kFmaExpEvery = 0, int kScores>
  __device__ __forceinline__ bool Update(float (&s)[kScores], int key0,
                                         float (&alpha)[2]) {
    constexpr int kBlockN = 2 * kScores;
    const float kMinusInf = -__int_as_float(0x7f800000);
    constexpr float kMaxSlack = 8.0f;
    // A negative scale reverses the order of the scores: scale them before
    // the maximum is taken; a positive one is folded into the exponent.
    const bool positive_scale = scale_log2 > 0.0f;
    const float post_scale = positive_scale ? scale_log2 : 1.0f;
    if (!positive_scale) {
#pragma unroll
      for (int i = 0; i < kScores; ++i) s[i] *= scale_log2;
    }
    const bool need_mask = key0 + kBlockN > num_rows ||
                           (is_causal && key0 + kBlockN - 1 > warp_first);
    if (need_mask) {
#pragma unroll
      for (int i = 0; i < kScores; ++i) {
        const int key = key0 + (i / 4) * 8 + 2 * pair + (i & 1);
        const int query = warp_first + group + ((i >> 1) & 1) * 8;
        if (key >= num_rows || (is_causal && key > query)) s[i] = kMinusInf;
      }
    }
    bool rescale = false;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float m = kMinusInf;
#pragma unroll
      for (int nt = 0; nt < kBlockN / 8; ++nt) {
        m = fmaxf(m, fmaxf(s[4 * nt + 2 * h], s[4 * nt + 2 * h + 1]));
      }
      m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 1));
      m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 2));
      m *= post_scale;
      // The running maximum moves only when the tile's exceeds it by more
      // than kMaxSlack (log2 units; always from -inf): until then the
      // probabilities are taken against the older, smaller maximum and stay
      // below 2^kMaxSlack, exact enough in fp32 sums and in the 16-bit P
      // operand (same relative precision), and the O accumulators need no
      // rescaling on most tiles.
      const bool move = m > row_max[h] + kMaxSlack;
      const float kept = move ? m : row_max[h];
      const float base = kept == kMinusInf ? 0.0f : kept;
      alpha[h] = move ? Exp2(row_max[h] - base) : 1.0f;
      rescale |= move;
      row_max[h] = kept;
      float sum = 0.0f;
#pragma unroll
      for (int nt = 0; nt < kBlockN / 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int i = 4 * nt + 2 * h + e;
          const float prob =
              Exp2Spread<kFmaExpEvery>(fmaf(s[i], post_scale, -base), i);
          s[i] = prob;
          sum += prob;
        }
      }
      row_sum[h] = row_sum[h] * alpha[h] + sum;
    }
    return __any_sync(0xffffffffu, rescale);
  }
};

// Sets every output accumulator to 0.
template <int kPanels>
__device__ __forceinline__ void ZeroAccumulators(float (&acc_o)[kPanels][32]) {
#pragma unroll
  for (int panel = 0; panel < kPanels; ++panel) {
#pragma unroll
    for (int i = 0; i < 32; ++i) acc_o[panel][i] = 0.0f;
  }
}

// Multiplies the rows of the output accumulators by `alpha` (wgmma.cuh
// layout: elements 4 t and 4 t + 1 in row `group`, 4 t + 2 and 4 t + 3 in
// row `group` + 8).
template <int kPanels>
__device__ __forceinline__ void RescaleRows(float (&acc_o)[kPanels][32],
                                            const float (&alpha)[2]) {
#pragma unroll
  for (int panel = 0; panel < kPanels; ++panel) {
#pragma unroll
    for (int ot = 0; ot < 8; ++ot) {
      acc_o[panel][4 * ot + 0] *= alpha[0];
      acc_o[panel][4 * ot + 1] *= alpha[0];
      acc_o[panel][4 * ot + 2] *= alpha[1];
      acc_o[panel][4 * ot + 3] *= alpha[1];
    }
  }
}

// The epilogue of one warp of a wgmma forward kernel: its 16 rows of out =
// (1 / G) * O / rowsum, staged through `stage` (the warp's own 16 rows of
// each panel of the swizzled Q tile, which no wgmma reads any more) for
// 16-byte stores, and their log-sum-exp into `lse_segment` when it is not
// null. All 32 lanes call it.
template <class Tile>
__device__ __forceinline__ void StoreForwardRows(
    const ForwardParams& p, const WorkItem& w, const OnlineSoftmaxRows& softmax,
    const float (&acc_o)[Tile::kPanels][32], unsigned char* stage,
    float* lse_segment, int chunks, int lane) {
  using T = typename Tile::T;
  const float kMinusInf = -__int_as_float(0x7f800000);
  // With Q in registers the staging rows were last read by this warp's
  // ldmatrix, whose lanes read rows that other lanes now write; on a walk
  // with no key tile no warpgroup-wide wgmma wait lies between the two.
  __syncwarp();
  float inverse[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float sum = softmax.row_sum[h];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    inverse[h] = sum > 0.0f ? p.output_scale / sum : 0.0f;
    const int query = softmax.warp_first + softmax.group + h * 8;
    if (lse_segment != nullptr && softmax.pair == 0 &&
        query < softmax.num_rows) {
      lse_segment[w.first + query * w.step] =
          sum > 0.0f ? (softmax.row_max[h] + __log2f(sum)) * kLn2 : kMinusInf;
    }
  }
  StoreAccumulatorPanels<Tile::kDtype>(
      stage, Tile::kBlockM * 128, acc_o, inverse[0], inverse[1],
      SelectedRow0<T>(p.out, w), RowStep(p.out, w), softmax.warp_first,
      softmax.num_rows, chunks, lane);
}

template <class Tile>
__global__ void __launch_bounds__(Tile::kThreads, Tile::kMinBlocks)
    FlashForwardWgmmaKernel(const __grid_constant__ FlashForwardArgs args) {
#if DA_WGMMA_ENABLED
  using T = typename Tile::T;
  constexpr DataType kDtype = Tile::kDtype;
  constexpr int kBlockM = Tile::kBlockM;
  constexpr int kBlockN = Tile::kBlockN;
  constexpr int kTileBytes = Tile::kTileBytes;
  constexpr int kPanels = Tile::kPanels;
  // Bytes between the 64-column panels of the Q tile.
  constexpr int kQPanelBytes = kBlockM * 128;

  extern __shared__ __align__(16) unsigned char smem_raw[];
  unsigned char* smem = AlignedSharedBase(smem_raw);
  const uint32_t s_q = SharedAddress(smem);
  const uint32_t s_k = s_q + Tile::kQBytes;
  const uint32_t s_v = s_k + 2 * kTileBytes;

  const ForwardParams& p = args.params;
  const WorkItem w = DecodeBlock(args.block_begin, args.general, p, blockIdx.x,
                                 kBlockM, p.is_causal);
  const int num_rows = w.length;
  const int chunks = static_cast<int>(p.head_dim / 8);
  const int tid = threadIdx.x;
  const int j_begin = w.block * kBlockM;
  const int j_end = min(j_begin + kBlockM, num_rows);
  float* lse_segment =
      p.lse == nullptr ? nullptr
                       : SegmentStart(p.lse, p.lse_stride_b, p.lse_stride_h, w);

  if (num_rows > 0) {
    const int warpgroup = tid / 128;
    const int warp = (tid % 128) / 32;  // within the warpgroup
    const int lane = tid % 32;
    const int wg_first = j_begin + warpgroup * 64;  // first row of the group
    const int warp_first = wg_first + warp * 16;

    const T* q_rows = SelectedRow0<const T>(p.q, w);
    const T* k_rows = SelectedRow0<const T>(p.k, w);
    const T* v_rows = SelectedRow0<const T>(p.v, w);
    const int64_t q_step = RowStep(p.q, w);
    const int64_t k_step = RowStep(p.k, w);
    const int64_t v_step = RowStep(p.v, w);

    // Q and the first K tile; every step below waits for the loads of the
    // one before and starts its own.
    LoadPanelsSwizzled<kBlockM, Tile::kThreads, kPanels>(
        s_q, q_rows, q_step, j_begin, num_rows, chunks, tid);
    const int key_limit = p.is_causal ? j_end : num_rows;
    const TileWalk keys =
        KeyTilesOf<kBlockN>(args.sparse, w, j_begin, key_limit);
    const int num_key_tiles = keys.count;
    LoadPanelsSwizzled<kBlockN, Tile::kThreads, kPanels>(
        s_k, k_rows, k_step, keys.Tile(0) * kBlockN, num_rows, chunks, tid);
    CpAsyncCommit();
    // K(t) and V(t) live in buffer t & 1. Step `tile` of the walk loads
    // K(tile + 2) and V(tile + 1) into the buffers that K(tile) and
    // V(tile - 1) leave; the step before it (-1) loads K(1) and V(0).
    auto wait_and_load = [&](int tile) {
      CpAsyncWait<0>();
      FenceSharedForAsyncProxy();
      __syncthreads();  // and every warpgroup is done with those buffers
      if (tile + 2 < num_key_tiles) {
        LoadPanelsSwizzled<kBlockN, Tile::kThreads, kPanels>(
            s_k + (tile & 1) * kTileBytes, k_rows, k_step,
            keys.Tile(tile + 2) * kBlockN, num_rows, chunks, tid);
      }
      if (tile + 1 < num_key_tiles) {
        LoadPanelsSwizzled<kBlockN, Tile::kThreads, kPanels>(
            s_v + ((tile + 1) & 1) * kTileBytes, v_rows, v_step,
            keys.Tile(tile + 1) * kBlockN, num_rows, chunks, tid);
      }
      CpAsyncCommit();
    };

    float acc_o[kPanels][32];  // O columns 64 p .. 64 p + 63 in acc_o[p]
    float s[Tile::kScores];
    uint32_t prob[kBlockN / 16][4];  // P of the tile whose P V is next
    ZeroAccumulators(acc_o);
    OnlineSoftmaxRows softmax = OnlineSoftmaxRows::Start(
        num_rows, warp_first, lane, p.is_causal, p.softmax_scale);
    const uint32_t q_rows_of_group = s_q + warpgroup * 64 * 128;
    uint32_t q_frag[Tile::kQSteps][4];  // with Tile::kQInRegisters
    // Every warpgroup computes every tile of the walk: with one warpgroup
    // per block (the shipped shapes) each tile has rows of the block, and a
    // tile past a warpgroup's causal diagonal is masked to P = 0.
    wait_and_load(-1);
    if constexpr (Tile::kQInRegisters) {
      LoadQueryFragments(q_frag, q_rows_of_group, kQPanelBytes, warp, lane);
    }
    if (num_key_tiles > 0) {
      WgmmaFence();
      IssueScores<Tile>(s, q_rows_of_group, q_frag, s_k);
      WgmmaWait<0>();
      WgmmaPinAccumulators(s);
      float alpha[2];
      // O is still 0.
      softmax.Update<Tile::kFmaExpEvery>(s, keys.Tile(0) * kBlockN, alpha);
      PackScores<kDtype>(s, prob);
    }
    // Step `tile`: S(tile + 1) and P(tile) V(tile) are issued back to back,
    // and the softmax of S(tile + 1) runs while P V is on the tensor cores.
    for (int tile = 0; tile + 1 < num_key_tiles; ++tile) {
      const int buf = WarpUniform(tile & 1);
      wait_and_load(tile);
      WgmmaFence();
      IssueScores<Tile>(s, q_rows_of_group, q_frag,
                        s_k + (buf ^ 1) * kTileBytes);
      IssueValues<Tile>(acc_o, prob, s_v + buf * kTileBytes);
      WgmmaWait<1>();  // S, the older group
      WgmmaPinAccumulators(s);
      float alpha[2];
      const bool rescale = softmax.Update<Tile::kFmaExpEvery>(
          s, keys.Tile(tile + 1) * kBlockN, alpha);
      WgmmaWait<0>();  // P V: O and the P registers are free again
      WgmmaPinAccumulators(acc_o);
      if (rescale) RescaleRows(acc_o, alpha);
      PackScores<kDtype>(s, prob);
    }
    if (num_key_tiles > 0) {
      const int last = num_key_tiles - 1;
      wait_and_load(last);
      WgmmaFence();
      IssueValues<Tile>(acc_o, prob, s_v + (last & 1) * kTileBytes);
      WgmmaWait<0>();
      WgmmaPinAccumulators(acc_o);
    }

    DrainEmptyWalk(keys);
    StoreForwardRows<Tile>(p, w, softmax, acc_o,
                           smem + warpgroup * 64 * 128 + warp * 16 * 128,
                           lse_segment, chunks, lane);
  }
  ZeroUnselectedRows(SegmentStart<T>(p.out, w), p.out.stride_n, w, j_begin,
                     j_end, chunks, lse_segment, tid, Tile::kThreads);
#else
  __trap();  // never launched: WgmmaAvailable() is false without sm_90a
#endif
}

// Launches the wgmma forward kernel over every group of `p` on `stream`;
// `general` and `sparse` as for LaunchFlashForward.
template <class Tile>
cudaError_t LaunchFlashForwardWgmma(
    const ForwardParams& p, cudaStream_t stream,
    const ProblemIndex& general = ProblemIndex{},
    const BlockLists& sparse = BlockLists{}) {
  return LaunchForwardKernel<Tile>(FlashForwardWgmmaKernel<Tile>, p, stream,
                                   general, sparse);
}

}  // namespace gpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CUDA_FLASH_FORWARD_WGMMA_CUH_
