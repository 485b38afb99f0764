// File: flash_backward.cuh
//
// The fused strided backward pass (FlashAttention-2 style, recomputing the
// probabilities from the forward log-sum-exp), deterministic: no atomics.
//
// With c = 1 / G and P = softmax(scale * Q K^T), out = c * P V, so
//   dV = c * P^T dO,   dP = c * dO V^T,   dS = P o (dP - D),
//   dQ = scale * dS K, dK = scale * dS^T Q,
// where D = rowsum(dP o P) = rowsum(dO o out) (out already carries c).
// With dropout factors M (kernels/dropout_rng.h), out = c (P o M) V:
// dV = c (P o M)^T dO and dS = P o (dP o M - D), D unchanged.
//
// Three kernels, each over every problem (flash_common.cuh) in one launch:
//   1. FlashDeltaKernel: D for every row of every problem, into a float
//      workspace laid out like the lse (FlashBackwardArgs::delta).
//   2. FlashKeyValueKernel: one block per block of kBlockN keys of a
//      problem; each warp owns 16 keys and walks the query tiles, computing
//      S^T and dP^T directly (no cross-warp reduction), accumulating dK and
//      dV.
//   3. FlashQueryKernel: one block per block of kBlockM queries of a
//      problem, walking the key tiles and accumulating dQ.
// Kernels 2 and 3 also write zeros to the positions of each segment that
// are not rows of its problem (padded and unselected positions).

#ifndef KERNELS_CUDA_FLASH_BACKWARD_CUH_
#define KERNELS_CUDA_FLASH_BACKWARD_CUH_

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cuda/device_primitives.cuh"
#include "kernels/cuda/flash_common.cuh"
#include "kernels/cuda/warp_mma.cuh"
#include "kernels/dilated_params.h"

namespace dilated {
namespace kernels {
namespace gpu {

// Which gradients FlashKeyValueKernel accumulates: both, or one of them
// (wide head dimensions split the work to keep the accumulators in
// registers).
enum class KeyValuePart { kBoth, kValueOnly, kKeyOnly };

// Arguments of FlashDeltaKernel. Closed form: rows [row_begin[i],
// row_begin[i + 1]) of the launch belong to group i. Problem list: `general`
// counts num_heads x length rows per problem (ProblemTable::AddRows).
struct FlashDeltaArgs {
  BackwardParams params;
  int64_t row_begin[kMaxGroups + 1];
  ProblemIndex general;
  float* delta;  // As FlashBackwardArgs::delta.
  int64_t delta_stride_b;
};

// Returns the work item (head set, block unset) and, in *j, the row of unit
// `row_index` of FlashDeltaKernel: rows vary fastest, then heads.
__host__ __device__ __forceinline__ WorkItem
DecodeDeltaRow(const FlashDeltaArgs& args, int64_t row_index, int* j) {
  const ForwardParams& p = args.params.forward;
  if (args.general.problems != nullptr) {
    const int64_t pi = FindProblem(args.general, row_index);
    WorkItem w = ProblemWorkItem(args.general.problems[pi]);
    const int64_t rest = row_index - args.general.begin[pi];
    *j = static_cast<int>(rest % w.length);
    w.head = p.groups[w.group].head_begin + rest / w.length;
    return w;
  }
  int gi = 0;
  while (gi + 1 < p.num_groups && row_index >= args.row_begin[gi + 1]) ++gi;
  const GroupParams& g = p.groups[gi];
  int64_t rest = row_index - args.row_begin[gi];
  *j = static_cast<int>(rest % g.positions);
  rest /= g.positions;
  const int64_t head = g.head_begin + rest % g.num_heads;
  rest /= g.num_heads;
  const int64_t segments = p.seq_len / g.segment_length;
  WorkItem w = SegmentWorkItem(p, gi, rest / segments, rest % segments);
  w.head = head;
  return w;
}

// One thread block of kRowsPerBlock rows, 8 lanes per row.
template <DataType kDtype>
__global__ void __launch_bounds__(256)
    FlashDeltaKernel(const __grid_constant__ FlashDeltaArgs args) {
  using T = typename Element<kDtype>::Type;
  constexpr int kLanesPerRow = 8;
  const ForwardParams& p = args.params.forward;
  const int64_t row_index =
      (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) /
      kLanesPerRow;
  const int lane = threadIdx.x % kLanesPerRow;
  const int64_t total = args.general.problems != nullptr
                            ? args.general.total
                            : args.row_begin[p.num_groups];
  const bool valid = row_index < total;
  float dot = 0.0f;
  float* target = nullptr;
  if (valid) {
    int j;
    const WorkItem w = DecodeDeltaRow(args, row_index, &j);
    const T* out_row = SelectedRow0<const T>(p.out, w) + j * RowStep(p.out, w);
    const T* grad_row = SelectedRow0<const T>(args.params.grad_out, w) +
                        j * RowStep(args.params.grad_out, w);
    // Before the loop, so that only the address stays live across it.
    target = SegmentStart(args.delta, args.delta_stride_b, p.seq_len, w) +
             w.first + j * w.step;
    const int chunks = static_cast<int>(p.head_dim / 8);
    for (int c = lane; c < chunks; c += kLanesPerRow) {
      dot += Dot8<T>(*reinterpret_cast<const uint4*>(out_row + c * 8),
                     *reinterpret_cast<const uint4*>(grad_row + c * 8));
    }
  }
#pragma unroll
  for (int d = kLanesPerRow / 2; d > 0; d /= 2) {
    dot += __shfl_xor_sync(0xffffffffu, dot, d);
  }
  if (valid && lane == 0) *target = dot;
}

// The forward log-sum-exp and D = rowsum(dO * out) of the rows of one
// problem on one head.
struct RowStatistics {
  const float* lse;    // at row 0; stride `rate`
  const float* delta;  // at row 0; stride `rate`
  int rate;
  int rows;  // rows of the problem

  // Returns lse * log2(e) of row `query`, or +inf for a tile row past the
  // problem's last (query >= rows), which makes exp2(x - lse) vanish.
  __device__ __forceinline__ float LseLog2(int query) const {
    return query < rows ? lse[query * rate] * kLog2e
                        : __int_as_float(0x7f800000);
  }

  // Returns D of row `query`, or 0 for a tile row past the problem's last.
  __device__ __forceinline__ float Delta(int query) const {
    return query < rows ? delta[query * rate] : 0.0f;
  }
};

// Returns the delta buffer's entry of the segment's first position of `w`.
__host__ __device__ __forceinline__ float* DeltaSegment(
    const FlashBackwardArgs& args, const WorkItem& w) {
  return SegmentStart(args.delta, args.delta_stride_b,
                      args.params.forward.seq_len, w);
}

// Returns the row statistics of work item `w`.
__device__ __forceinline__ RowStatistics
MakeRowStatistics(const FlashBackwardArgs& args, const WorkItem& w) {
  const ForwardParams& p = args.params.forward;
  RowStatistics stats;
  stats.lse = SegmentStart(p.lse, p.lse_stride_b, p.lse_stride_h, w) + w.first;
  stats.delta = DeltaSegment(args, w) + w.first;
  stats.rate = w.step;
  stats.rows = w.length;
  return stats;
}

// Compile-time shape of FlashKeyValueKernel: kWarps warps of 16 keys each,
// query tiles of kBlockM rows (double-buffered).
template <DataType kDtypeT, int kHeadDimT, int kBlockMT, int kWarpsT,
          bool kKeyValueInRegistersT, KeyValuePart kPartT, int kMinBlocksT>
struct KeyValueTile {
  using T = typename Element<kDtypeT>::Type;
  static constexpr DataType kDtype = kDtypeT;
  static constexpr int kHeadDim = kHeadDimT;
  static constexpr int kBlockM = kBlockMT;  // query rows per tile
  static constexpr int kWarps = kWarpsT;
  static constexpr bool kKeyValueInRegisters = kKeyValueInRegistersT;
  static constexpr KeyValuePart kPart = kPartT;
  static constexpr int kMinBlocks = kMinBlocksT;

  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kBlockN = 16 * kWarps;  // keys per block
  static constexpr int kStride = kHeadDim + 8;
  static constexpr int kDSteps = kHeadDim / 16;
  static constexpr int kQTiles = kBlockM / 8;   // n8 tiles of S^T
  static constexpr int kQSteps = kBlockM / 16;  // k16 steps over queries
  static constexpr int kOTiles = kHeadDim / 8;
  static constexpr int kChunks = kHeadDim / 8;
  static constexpr size_t kSmemBytes =
      static_cast<size_t>(2 * kBlockN + 4 * kBlockM) * kStride * sizeof(T) +
      4 * kBlockM * sizeof(float);

  static_assert(kBlockM % 16 == 0, "query tiles are whole k16 steps");
  static_assert(kThreads >= kBlockM, "one thread per query row statistic");
};

// x = A_x B_x^T and y = A_y B_y^T over the head dimension, for the warp's 16
// rows: A_x and A_y are rows [a_row0, a_row0 + 16) of the panels a_x and a_y
// or, with kAInRegisters, their fragments frag_x and frag_y (one per k16
// step); B_x and B_y are tiles of kTiles * 8 rows. One walk over the k16
// steps serves both products (S and dP in both backward kernels).
template <class Tile, bool kAInRegisters, int kTiles, int kFragSteps,
          typename T>
__device__ __forceinline__ void TwoProducts(
    float (&x)[kTiles][4], float (&y)[kTiles][4],
    const uint32_t (&frag_x)[kFragSteps][4],
    const uint32_t (&frag_y)[kFragSteps][4], const T* a_x, const T* a_y,
    int a_row0, const T* b_x, const T* b_y, const MmaLane& mma_lane) {
  constexpr int kStride = Tile::kStride;
  ZeroTiles(x);
  ZeroTiles(y);
#pragma unroll
  for (int ks = 0; ks < Tile::kDSteps; ++ks) {
    uint32_t ax[4];
    uint32_t ay[4];
    if constexpr (kAInRegisters) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        ax[e] = frag_x[ks][e];
        ay[e] = frag_y[ks][e];
      }
    } else {
      LdMatrixX4(ax, FragmentAddressX<kStride>(a_x, a_row0, ks * 16, mma_lane));
      LdMatrixX4(ay, FragmentAddressX<kStride>(a_y, a_row0, ks * 16, mma_lane));
    }
#pragma unroll
    for (int nt = 0; nt < kTiles; nt += 2) {
      uint32_t b[4];
      LdMatrixX4(b, FragmentAddressY<kStride>(b_x, nt * 8, ks * 16, mma_lane));
      Mma<Tile::kDtype>(x[nt], ax, b[0], b[1]);
      Mma<Tile::kDtype>(x[nt + 1], ax, b[2], b[3]);
      LdMatrixX4(b, FragmentAddressY<kStride>(b_y, nt * 8, ks * 16, mma_lane));
      Mma<Tile::kDtype>(y[nt], ay, b[0], b[1]);
      Mma<Tile::kDtype>(y[nt + 1], ay, b[2], b[3]);
    }
  }
}

// kDropout: as for FlashForwardKernel.
template <class Tile, bool kDropout>
__global__ void __launch_bounds__(Tile::kThreads, Tile::kMinBlocks)
    FlashKeyValueKernel(const __grid_constant__ FlashBackwardArgs args) {
  using T = typename Tile::T;
  constexpr DataType kDtype = Tile::kDtype;
  constexpr int kBlockM = Tile::kBlockM;
  constexpr int kBlockN = Tile::kBlockN;
  constexpr int kStride = Tile::kStride;
  constexpr int kQTiles = Tile::kQTiles;
  constexpr int kOTiles = Tile::kOTiles;
  constexpr bool kValue = Tile::kPart != KeyValuePart::kKeyOnly;
  constexpr bool kKey = Tile::kPart != KeyValuePart::kValueOnly;

  extern __shared__ __align__(16) unsigned char smem_bytes[];
  T* s_k = reinterpret_cast<T*>(smem_bytes);
  T* s_v = s_k + kBlockN * kStride;
  T* s_q = s_v + kBlockN * kStride;       // [2][kBlockM][kStride]
  T* s_do = s_q + 2 * kBlockM * kStride;  // [2][kBlockM][kStride]
  float* s_lse = reinterpret_cast<float*>(s_do + 2 * kBlockM * kStride);
  float* s_delta = s_lse + 2 * kBlockM;  // [2][kBlockM]

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
    const MmaLane mma_lane = MmaLaneOf(lane);
    const int warp_row0 = warp * 16;
    const int warp_first = k_begin + warp_row0;  // first key of the warp

    const T* q_rows = SelectedRow0<const T>(p.q, w);
    const T* k_rows = SelectedRow0<const T>(p.k, w);
    const T* v_rows = SelectedRow0<const T>(p.v, w);
    const T* do_rows = SelectedRow0<const T>(bp.grad_out, w);
    const int64_t q_step = RowStep(p.q, w);
    const int64_t do_step = RowStep(bp.grad_out, w);
    const RowStatistics stats = MakeRowStatistics(args, w);

    // Starts loading query tile `qt` into buffer `buf`.
    auto load_query_tile = [&](int qt, int buf) {
      const int q0 = qt * kBlockM;
      LoadRows<kBlockM, Tile::kHeadDim, Tile::kThreads>(
          s_q + buf * kBlockM * kStride, q_rows, q_step, q0, num_rows, chunks,
          tid);
      LoadRows<kBlockM, Tile::kHeadDim, Tile::kThreads>(
          s_do + buf * kBlockM * kStride, do_rows, do_step, q0, num_rows,
          chunks, tid);
      if (tid < kBlockM) {
        s_lse[buf * kBlockM + tid] = stats.LseLog2(q0 + tid);
        s_delta[buf * kBlockM + tid] = stats.Delta(q0 + tid);
      }
    };

    LoadRows<kBlockN, Tile::kHeadDim, Tile::kThreads>(
        s_k, k_rows, RowStep(p.k, w), k_begin, num_rows, chunks, tid);
    LoadRows<kBlockN, Tile::kHeadDim, Tile::kThreads>(
        s_v, v_rows, RowStep(p.v, w), k_begin, num_rows, chunks, tid);
    const TileWalk queries =
        QueryTilesOf<kBlockM>(args.sparse, w, k_begin, num_rows, p.is_causal);
    load_query_tile(queries.Tile(0), 0);
    CpAsyncCommit();

    constexpr int kFragSteps = Tile::kKeyValueInRegisters ? Tile::kDSteps : 1;
    uint32_t k_frag[kFragSteps][4];
    uint32_t v_frag[kFragSteps][4];
    float acc_dv[kValue ? kOTiles : 1][4];
    float acc_dk[kKey ? kOTiles : 1][4];
#pragma unroll
    for (int ot = 0; ot < (kValue ? kOTiles : 1); ++ot) {
#pragma unroll
      for (int e = 0; e < 4; ++e) acc_dv[ot][e] = 0.0f;
    }
#pragma unroll
    for (int ot = 0; ot < (kKey ? kOTiles : 1); ++ot) {
#pragma unroll
      for (int e = 0; e < 4; ++e) acc_dk[ot][e] = 0.0f;
    }
    const float scale_log2 = p.softmax_scale * kLog2e;
    const bool warp_has_keys = warp_first < num_rows;

    for (int t = 0; t < queries.count; ++t) {
      const int qt = queries.Tile(t);
      const int buf = t & 1;
      if (t + 1 < queries.count) {
        load_query_tile(queries.Tile(t + 1), buf ^ 1);
        CpAsyncCommit();
        CpAsyncWait<1>();
      } else {
        CpAsyncWait<0>();
      }
      __syncthreads();
      if constexpr (Tile::kKeyValueInRegisters) {
        if (t == 0) {
#pragma unroll
          for (int ks = 0; ks < Tile::kDSteps; ++ks) {
            LdMatrixX4(k_frag[ks], FragmentAddressX<kStride>(
                                       s_k, warp_row0, ks * 16, mma_lane));
            LdMatrixX4(v_frag[ks], FragmentAddressX<kStride>(
                                       s_v, warp_row0, ks * 16, mma_lane));
          }
        }
      }
      const int q0 = qt * kBlockM;
      const bool active =
          warp_has_keys && (!p.is_causal || q0 + kBlockM - 1 >= warp_first);
      if (active) {
        const T* tq = s_q + buf * kBlockM * kStride;
        const T* tdo = s_do + buf * kBlockM * kStride;
        const float* tlse = s_lse + buf * kBlockM;
        const float* tdelta = s_delta + buf * kBlockM;
        float st[kQTiles][4];   // S^T: keys x queries
        float dpt[kQTiles][4];  // dP^T / c
        TwoProducts<Tile, Tile::kKeyValueInRegisters>(
            st, dpt, k_frag, v_frag, s_k, s_v, warp_row0, tq, tdo, mma_lane);
        // P^T into st, dS^T into dpt.
        const bool need_mask = p.is_causal && q0 < warp_first + 15;
#pragma unroll
        for (int nt = 0; nt < kQTiles; ++nt) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int col = nt * 8 + 2 * mma_lane.pair + (e & 1);
            float prob = Exp2(st[nt][e] * scale_log2 - tlse[col]);
            if (need_mask) {
              const int key = warp_first + mma_lane.group + (e >> 1) * 8;
              if (key > q0 + col) prob = 0.0f;
            }
            float factor = 1.0f;
            if constexpr (kDropout) {
              if (prob != 0.0f) {
                factor = FlashDropoutFactor(
                    p, w, q0 + col, warp_first + mma_lane.group + (e >> 1) * 8);
              }
            }
            st[nt][e] = prob * factor;
            dpt[nt][e] =
                prob * (dpt[nt][e] * factor * p.output_scale - tdelta[col]);
          }
        }
        // dV += P^T dO, dK += dS^T Q.
#pragma unroll
        for (int kk = 0; kk < Tile::kQSteps; ++kk) {
          uint32_t ap[4];
          uint32_t ads[4];
          if constexpr (kValue) PackAFragment<kDtype>(ap, st, kk);
          if constexpr (kKey) PackAFragment<kDtype>(ads, dpt, kk);
#pragma unroll
          for (int ot = 0; ot < kOTiles; ot += 2) {
            uint32_t b[4];
            if constexpr (kValue) {
              LdMatrixX4Trans(
                  b, FragmentAddressX<kStride>(tdo, kk * 16, ot * 8, mma_lane));
              Mma<kDtype>(acc_dv[ot], ap, b[0], b[1]);
              Mma<kDtype>(acc_dv[ot + 1], ap, b[2], b[3]);
            }
            if constexpr (kKey) {
              LdMatrixX4Trans(
                  b, FragmentAddressX<kStride>(tq, kk * 16, ot * 8, mma_lane));
              Mma<kDtype>(acc_dk[ot], ads, b[0], b[1]);
              Mma<kDtype>(acc_dk[ot + 1], ads, b[2], b[3]);
            }
          }
        }
      }
      __syncthreads();  // every warp is done with `buf` before it is refilled
    }

    DrainEmptyWalk(queries);
    // Epilogue: staged through this warp's own rows of s_k and s_v.
    if constexpr (kValue) {
      StageRows<kDtype, kOTiles, kStride>(s_v, warp_row0, acc_dv,
                                          p.output_scale, mma_lane);
    }
    if constexpr (kKey) {
      StageRows<kDtype, kOTiles, kStride>(s_k, warp_row0, acc_dk,
                                          p.softmax_scale, mma_lane);
    }
    __syncwarp();
    T* dk_rows = SelectedRow0<T>(bp.grad_k, w);
    T* dv_rows = SelectedRow0<T>(bp.grad_v, w);
    const int64_t dk_step = RowStep(bp.grad_k, w);
    const int64_t dv_step = RowStep(bp.grad_v, w);
    ForEachStoredChunk<16, Tile::kChunks>(
        warp_first, num_rows, chunks, lane, [&](int r, int c) {
          if constexpr (kValue) {
            CopyStagedChunk<kStride>(dv_rows, dv_step, warp_first + r, s_v,
                                     warp_row0, r, c);
          }
          if constexpr (kKey) {
            CopyStagedChunk<kStride>(dk_rows, dk_step, warp_first + r, s_k,
                                     warp_row0, r, c);
          }
        });
  }
  if constexpr (kValue) {
    ZeroUnselectedRows(SegmentStart<T>(bp.grad_v, w), bp.grad_v.stride_n, w,
                       k_begin, k_end, chunks, nullptr, tid, Tile::kThreads);
  }
  if constexpr (kKey) {
    ZeroUnselectedRows(SegmentStart<T>(bp.grad_k, w), bp.grad_k.stride_n, w,
                       k_begin, k_end, chunks, nullptr, tid, Tile::kThreads);
  }
}

// Compile-time shape of FlashQueryKernel: kWarps warps of 16 query rows,
// key tiles of kBlockN rows (double-buffered).
template <DataType kDtypeT, int kHeadDimT, int kBlockNT, int kWarpsT,
          bool kQInRegistersT, int kMinBlocksT>
struct QueryTile {
  using T = typename Element<kDtypeT>::Type;
  static constexpr DataType kDtype = kDtypeT;
  static constexpr int kHeadDim = kHeadDimT;
  static constexpr int kBlockN = kBlockNT;
  static constexpr int kWarps = kWarpsT;
  static constexpr bool kQInRegisters = kQInRegistersT;
  static constexpr int kMinBlocks = kMinBlocksT;

  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kBlockM = 16 * kWarps;
  static constexpr int kStride = kHeadDim + 8;
  static constexpr int kDSteps = kHeadDim / 16;
  static constexpr int kSTiles = kBlockN / 8;
  static constexpr int kKeySteps = kBlockN / 16;
  static constexpr int kOTiles = kHeadDim / 8;
  static constexpr int kChunks = kHeadDim / 8;
  static constexpr size_t kSmemBytes =
      static_cast<size_t>(2 * kBlockM + 4 * kBlockN) * kStride * sizeof(T);

  static_assert(kBlockN % 16 == 0, "key tiles are whole k16 steps");
};

// kDropout: as for FlashForwardKernel.
template <class Tile, bool kDropout>
__global__ void __launch_bounds__(Tile::kThreads, Tile::kMinBlocks)
    FlashQueryKernel(const __grid_constant__ FlashBackwardArgs args) {
  using T = typename Tile::T;
  constexpr DataType kDtype = Tile::kDtype;
  constexpr int kBlockM = Tile::kBlockM;
  constexpr int kBlockN = Tile::kBlockN;
  constexpr int kStride = Tile::kStride;
  constexpr int kSTiles = Tile::kSTiles;
  constexpr int kOTiles = Tile::kOTiles;

  extern __shared__ __align__(16) unsigned char smem_bytes[];
  T* s_q = reinterpret_cast<T*>(smem_bytes);
  T* s_do = s_q + kBlockM * kStride;
  T* s_k = s_do + kBlockM * kStride;  // [2][kBlockN][kStride]
  T* s_v = s_k + 2 * kBlockN * kStride;

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
    const MmaLane mma_lane = MmaLaneOf(lane);
    const int warp_row0 = warp * 16;
    const int warp_first = j_begin + warp_row0;

    const T* k_rows = SelectedRow0<const T>(p.k, w);
    const T* v_rows = SelectedRow0<const T>(p.v, w);
    const int64_t k_step = RowStep(p.k, w);
    const int64_t v_step = RowStep(p.v, w);

    LoadRows<kBlockM, Tile::kHeadDim, Tile::kThreads>(
        s_q, SelectedRow0<const T>(p.q, w), RowStep(p.q, w), j_begin, num_rows,
        chunks, tid);
    LoadRows<kBlockM, Tile::kHeadDim, Tile::kThreads>(
        s_do, SelectedRow0<const T>(bp.grad_out, w), RowStep(bp.grad_out, w),
        j_begin, num_rows, chunks, tid);
    const int key_limit = p.is_causal ? j_end : num_rows;
    const TileWalk keys =
        KeyTilesOf<kBlockN>(args.sparse, w, j_begin, key_limit);
    const int num_tiles = keys.count;
    LoadRows<kBlockN, Tile::kHeadDim, Tile::kThreads>(
        s_k, k_rows, k_step, keys.Tile(0) * kBlockN, num_rows, chunks, tid);
    LoadRows<kBlockN, Tile::kHeadDim, Tile::kThreads>(
        s_v, v_rows, v_step, keys.Tile(0) * kBlockN, num_rows, chunks, tid);
    CpAsyncCommit();

    // Row statistics of this thread's two rows.
    const RowStatistics stats = MakeRowStatistics(args, w);
    float row_lse[2];
    float row_delta[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      row_lse[h] = stats.LseLog2(warp_first + mma_lane.group + h * 8);
      row_delta[h] = stats.Delta(warp_first + mma_lane.group + h * 8);
    }

    constexpr int kFragSteps = Tile::kQInRegisters ? Tile::kDSteps : 1;
    uint32_t q_frag[kFragSteps][4];
    uint32_t do_frag[kFragSteps][4];
    float acc_dq[kOTiles][4];
#pragma unroll
    for (int ot = 0; ot < kOTiles; ++ot) {
#pragma unroll
      for (int e = 0; e < 4; ++e) acc_dq[ot][e] = 0.0f;
    }
    const float scale_log2 = p.softmax_scale * kLog2e;
    const bool warp_has_rows = warp_first < num_rows;

    for (int tile = 0; tile < num_tiles; ++tile) {
      const int buf = tile & 1;
      if (tile + 1 < num_tiles) {
        const int next_key0 = keys.Tile(tile + 1) * kBlockN;
        LoadRows<kBlockN, Tile::kHeadDim, Tile::kThreads>(
            s_k + (buf ^ 1) * kBlockN * kStride, k_rows, k_step, next_key0,
            num_rows, chunks, tid);
        LoadRows<kBlockN, Tile::kHeadDim, Tile::kThreads>(
            s_v + (buf ^ 1) * kBlockN * kStride, v_rows, v_step, next_key0,
            num_rows, chunks, tid);
        CpAsyncCommit();
        CpAsyncWait<1>();
      } else {
        CpAsyncWait<0>();
      }
      __syncthreads();
      if constexpr (Tile::kQInRegisters) {
        if (tile == 0) {
#pragma unroll
          for (int ks = 0; ks < Tile::kDSteps; ++ks) {
            LdMatrixX4(q_frag[ks], FragmentAddressX<kStride>(
                                       s_q, warp_row0, ks * 16, mma_lane));
            LdMatrixX4(do_frag[ks], FragmentAddressX<kStride>(
                                        s_do, warp_row0, ks * 16, mma_lane));
          }
        }
      }
      const int key0 = keys.Tile(tile) * kBlockN;
      const bool active =
          warp_has_rows && (!p.is_causal || key0 <= warp_first + 15);
      if (active) {
        const T* tk = s_k + buf * kBlockN * kStride;
        const T* tv = s_v + buf * kBlockN * kStride;
        float s[kSTiles][4];
        float dp[kSTiles][4];  // dP / c
        TwoProducts<Tile, Tile::kQInRegisters>(
            s, dp, q_frag, do_frag, s_q, s_do, warp_row0, tk, tv, mma_lane);
        const bool need_mask = key0 + kBlockN > num_rows ||
                               (p.is_causal && key0 + kBlockN - 1 > warp_first);
#pragma unroll
        for (int nt = 0; nt < kSTiles; ++nt) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            float prob = Exp2(s[nt][e] * scale_log2 - row_lse[e >> 1]);
            if (need_mask) {
              const int key = key0 + nt * 8 + 2 * mma_lane.pair + (e & 1);
              const int query = warp_first + mma_lane.group + (e >> 1) * 8;
              if (key >= num_rows || (p.is_causal && key > query)) prob = 0.0f;
            }
            float factor = 1.0f;
            if constexpr (kDropout) {
              if (prob != 0.0f) {
                factor = FlashDropoutFactor(
                    p, w, warp_first + mma_lane.group + (e >> 1) * 8,
                    key0 + nt * 8 + 2 * mma_lane.pair + (e & 1));
              }
            }
            dp[nt][e] = prob * (dp[nt][e] * factor * p.output_scale -
                                row_delta[e >> 1]);
          }
        }
        // dQ += dS K.
#pragma unroll
        for (int kk = 0; kk < Tile::kKeySteps; ++kk) {
          uint32_t a[4];
          PackAFragment<kDtype>(a, dp, kk);
#pragma unroll
          for (int ot = 0; ot < kOTiles; ot += 2) {
            uint32_t b[4];
            LdMatrixX4Trans(
                b, FragmentAddressX<kStride>(tk, kk * 16, ot * 8, mma_lane));
            Mma<kDtype>(acc_dq[ot], a, b[0], b[1]);
            Mma<kDtype>(acc_dq[ot + 1], a, b[2], b[3]);
          }
        }
      }
      __syncthreads();  // every warp is done with `buf` before it is refilled
    }

    DrainEmptyWalk(keys);
    // Epilogue through this warp's own rows of s_q.
    StageRows<kDtype, kOTiles, kStride>(s_q, warp_row0, acc_dq, p.softmax_scale,
                                        mma_lane);
    __syncwarp();
    StoreStagedRows<16, Tile::kChunks, kStride>(
        SelectedRow0<T>(bp.grad_q, w), RowStep(bp.grad_q, w), s_q, warp_row0,
        warp_first, num_rows, chunks, lane);
  }
  ZeroUnselectedRows(SegmentStart<T>(bp.grad_q, w), bp.grad_q.stride_n, w,
                     j_begin, j_end, chunks, nullptr, tid, Tile::kThreads);
}

// Fills the row prefix counts of FlashDeltaKernel on the closed-form path
// and returns the total.
inline int64_t FillRowBegin(const ForwardParams& p, int64_t* row_begin) {
  int64_t total = 0;
  for (int i = 0; i < p.num_groups; ++i) {
    const GroupParams& g = p.groups[i];
    row_begin[i] = total;
    total +=
        p.batch * (p.seq_len / g.segment_length) * g.num_heads * g.positions;
  }
  row_begin[p.num_groups] = total;
  return total;
}

// Launches FlashDeltaKernel; `general` is the launch's problem list
// (ProblemTable::AddRows()), or null for the closed form.
template <DataType kDtype>
cudaError_t LaunchFlashDelta(const BackwardParams& bp, float* delta,
                             cudaStream_t stream,
                             const ProblemIndex& general = ProblemIndex{}) {
  FlashDeltaArgs args;
  args.params = bp;
  args.general = general;
  args.delta = delta;
  args.delta_stride_b = DeltaStrideB(bp.forward);
  int64_t rows = general.total;
  if (general.problems == nullptr) {
    rows = FillRowBegin(bp.forward, args.row_begin);
  } else {
    std::fill(args.row_begin, args.row_begin + kMaxGroups + 1, 0);
  }
  if (rows == 0) return cudaSuccess;
  constexpr int kThreads = 256;
  constexpr int kRowsPerBlock = kThreads / 8;
  const int64_t blocks = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
  if (blocks > 0x7fffffff) return cudaErrorInvalidConfiguration;
  FlashDeltaKernel<kDtype>
      <<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(args);
  return cudaGetLastError();
}

// Launches FlashKeyValueKernel<Tile>; `general` is the launch's problem list
// (ProblemTable::AddBlocks(Tile::kBlockN)), or null for the closed form.
template <class Tile>
cudaError_t LaunchFlashKeyValue(const FlashBackwardArgs& base,
                                cudaStream_t stream,
                                const ProblemIndex& general = ProblemIndex{}) {
  FlashBackwardArgs args = base;
  args.general = general;
  const int64_t blocks = LaunchBlocks(args.params.forward, general,
                                      Tile::kBlockN, args.block_begin);
  void (*kernel)(FlashBackwardArgs) = FlashKeyValueKernel<Tile, false>;
  if (args.params.forward.dropout.enabled) {
    kernel = FlashKeyValueKernel<Tile, true>;
  }
  return LaunchWithSmem<Tile>(kernel, args, blocks, stream);
}

// Launches FlashQueryKernel<Tile>; `general` as for LaunchFlashKeyValue with
// Tile::kBlockM rows per block.
template <class Tile>
cudaError_t LaunchFlashQuery(const FlashBackwardArgs& base, cudaStream_t stream,
                             const ProblemIndex& general = ProblemIndex{}) {
  FlashBackwardArgs args = base;
  args.general = general;
  const int64_t blocks = LaunchBlocks(args.params.forward, general,
                                      Tile::kBlockM, args.block_begin);
  void (*kernel)(FlashBackwardArgs) = FlashQueryKernel<Tile, false>;
  if (args.params.forward.dropout.enabled) {
    kernel = FlashQueryKernel<Tile, true>;
  }
  return LaunchWithSmem<Tile>(kernel, args, blocks, stream);
}

}  // namespace gpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CUDA_FLASH_BACKWARD_CUH_
