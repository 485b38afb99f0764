// File: flash_forward.cuh
//
// The fused strided forward kernel (FlashAttention-2 style): one thread block
// per (problem, head, block of kBlockM query rows), a problem being the rows
// of one group in one segment of one sequence (flash_common.cuh). It streams
// the problem's keys and values through shared memory in tiles of kBlockN
// rows, keeps the scores, the running row maxima and sums and the output in
// registers (mma.sync m16n8k16, float32 accumulation), and writes
// out * (1 / G), the log-sum-exp, and zeros (lse -inf) for the positions of
// the segment that are not rows of the problem. With dropout, the
// probabilities are multiplied by their factors after they enter the row
// sums and before they weigh v. Under a causal mask, key
// tiles past the block's last query are never loaded and a warp skips the
// tiles past its own last row.
//
// Included by the per-(head_dim, dtype) instantiation files only.

#ifndef KERNELS_CUDA_FLASH_FORWARD_CUH_
#define KERNELS_CUDA_FLASH_FORWARD_CUH_

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/device_primitives.cuh"
#include "kernels/cuda/flash_common.cuh"
#include "kernels/cuda/warp_mma.cuh"
#include "kernels/dilated_params.h"

namespace dilated {
namespace kernels {
namespace gpu {

// Compile-time shape of the forward kernel. kHeadDim is the padded head
// dimension (the tensors' head_dim may be smaller, a multiple of 8).
template <DataType kDtypeT, int kHeadDimT, int kBlockMT, int kBlockNT,
          int kWarpsT, bool kQInRegistersT, int kMinBlocksT, int kStagesT = 1>
struct ForwardTile {
  using T = typename Element<kDtypeT>::Type;
  static constexpr DataType kDtype = kDtypeT;
  static constexpr int kHeadDim = kHeadDimT;
  static constexpr int kBlockM = kBlockMT;
  static constexpr int kBlockN = kBlockNT;
  static constexpr int kWarps = kWarpsT;
  static constexpr bool kQInRegisters = kQInRegistersT;
  static constexpr int kMinBlocks = kMinBlocksT;
  // 1: one K and one V buffer, each refilled while the other is in use
  // (two barriers per key tile); 2: both double-buffered, the next tile
  // loading during the whole current one (one barrier pair per tile).
  static constexpr int kStages = kStagesT;

  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kWarpRows = kBlockM / kWarps;
  static constexpr int kMTiles = kWarpRows / 16;  // m16 tiles per warp
  static constexpr int kStride = kHeadDim + 8;    // padded shared row
  static constexpr int kDSteps = kHeadDim / 16;   // k16 steps over head_dim
  static constexpr int kSTiles = kBlockN / 8;     // n8 tiles of the scores
  static constexpr int kOTiles = kHeadDim / 8;    // n8 tiles of the output
  static constexpr int kKeySteps = kBlockN / 16;  // k16 steps over keys
  static constexpr int kChunks = kHeadDim / 8;    // 16-byte chunks per row
  static constexpr size_t kSmemBytes =
      static_cast<size_t>(kBlockM + 2 * kStages * kBlockN) * kStride *
      sizeof(T);

  static_assert(kWarpRows % 16 == 0, "a warp owns whole m16 tiles");
  static_assert(kStages == 1 || kStages == 2, "one or two K/V buffers");
  static_assert(kBlockN % 16 == 0, "key tiles are whole k16 steps");
  static_assert(kHeadDim % 16 == 0, "head_dim is padded to k16 steps");
};

// kDropout: the probabilities are multiplied by their dropout factors; a
// template parameter so that the kernel without dropout carries none of its
// code (nor its registers).
template <class Tile, bool kDropout>
__global__ void __launch_bounds__(Tile::kThreads, Tile::kMinBlocks)
    FlashForwardKernel(const __grid_constant__ FlashForwardArgs args) {
  using T = typename Tile::T;
  constexpr DataType kDtype = Tile::kDtype;
  constexpr int kBlockM = Tile::kBlockM;
  constexpr int kBlockN = Tile::kBlockN;
  constexpr int kStride = Tile::kStride;
  constexpr int kMTiles = Tile::kMTiles;
  constexpr int kSTiles = Tile::kSTiles;
  constexpr int kOTiles = Tile::kOTiles;
  const float kMinusInf = -__int_as_float(0x7f800000);

  extern __shared__ __align__(16) unsigned char smem_bytes[];
  T* s_q = reinterpret_cast<T*>(smem_bytes);
  T* s_k = s_q + kBlockM * kStride;
  T* s_v = s_k + Tile::kStages * kBlockN * kStride;

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
    const int warp = tid / 32;
    const int lane = tid % 32;
    const MmaLane mma_lane = MmaLaneOf(lane);
    const int warp_row0 = warp * Tile::kWarpRows;
    const int warp_first = j_begin + warp_row0;  // first query row of the warp
    const int warp_last = warp_first + Tile::kWarpRows - 1;

    const T* q_rows = SelectedRow0<const T>(p.q, w);
    const T* k_rows = SelectedRow0<const T>(p.k, w);
    const T* v_rows = SelectedRow0<const T>(p.v, w);
    const int64_t q_step = RowStep(p.q, w);
    const int64_t k_step = RowStep(p.k, w);
    const int64_t v_step = RowStep(p.v, w);

    LoadRows<kBlockM, Tile::kHeadDim, Tile::kThreads>(
        s_q, q_rows, q_step, j_begin, num_rows, chunks, tid);
    CpAsyncCommit();
    const int key_limit = p.is_causal ? j_end : num_rows;
    const TileWalk keys =
        KeyTilesOf<kBlockN>(args.sparse, w, j_begin, key_limit);
    const int num_key_tiles = keys.count;
    LoadRows<kBlockN, Tile::kHeadDim, Tile::kThreads>(
        s_k, k_rows, k_step, keys.Tile(0) * kBlockN, num_rows, chunks, tid);
    if constexpr (Tile::kStages == 2) {
      LoadRows<kBlockN, Tile::kHeadDim, Tile::kThreads>(
          s_v, v_rows, v_step, keys.Tile(0) * kBlockN, num_rows, chunks, tid);
    }
    CpAsyncCommit();

    constexpr int kQRegTiles = Tile::kQInRegisters ? kMTiles : 1;
    constexpr int kQRegSteps = Tile::kQInRegisters ? Tile::kDSteps : 1;
    uint32_t q_frag[kQRegTiles][kQRegSteps][4];
    if constexpr (Tile::kQInRegisters) {
      CpAsyncWait<1>();
      __syncthreads();
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
        for (int ks = 0; ks < Tile::kDSteps; ++ks) {
          LdMatrixX4(q_frag[mt][ks],
                     FragmentAddressX<kStride>(s_q, warp_row0 + mt * 16,
                                               ks * 16, mma_lane));
        }
      }
    }

    float acc_o[kMTiles][kOTiles][4];
    float row_max[kMTiles][2];  // log2 domain: max of scale * log2(e) * q.k
    float row_sum[kMTiles][2];  // this thread's partial sums
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
      for (int ot = 0; ot < kOTiles; ++ot) {
#pragma unroll
        for (int e = 0; e < 4; ++e) acc_o[mt][ot][e] = 0.0f;
      }
      row_max[mt][0] = row_max[mt][1] = kMinusInf;
      row_sum[mt][0] = row_sum[mt][1] = 0.0f;
    }
    const float scale_log2 = p.softmax_scale * kLog2e;
    const bool positive_scale = p.softmax_scale > 0.0f;
    const float post_scale = positive_scale ? scale_log2 : 1.0f;

    for (int tile = 0; tile < num_key_tiles; ++tile) {
      const int key0 = keys.Tile(tile) * kBlockN;
      const int next_key0 = keys.Tile(tile + 1) * kBlockN;
      const T* t_k = s_k;
      const T* t_v = s_v;
      if constexpr (Tile::kStages == 2) {
        const int buf = tile & 1;
        t_k = s_k + buf * kBlockN * kStride;
        t_v = s_v + buf * kBlockN * kStride;
        if (tile + 1 < num_key_tiles) {
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
        __syncthreads();  // K and V tiles landed
      } else {
        CpAsyncWait<0>();
        __syncthreads();  // K tile landed; every warp is done with s_v
        LoadRows<kBlockN, Tile::kHeadDim, Tile::kThreads>(
            s_v, v_rows, v_step, key0, num_rows, chunks, tid);
        CpAsyncCommit();
      }
      const bool active =
          warp_first < num_rows && (!p.is_causal || key0 <= warp_last);
      float s[kMTiles][kSTiles][4];
      if (active) {
#pragma unroll
        for (int mt = 0; mt < kMTiles; ++mt) {
          ZeroTiles(s[mt]);
        }
        // S = Q K^T.
#pragma unroll
        for (int ks = 0; ks < Tile::kDSteps; ++ks) {
          uint32_t a[kMTiles][4];
#pragma unroll
          for (int mt = 0; mt < kMTiles; ++mt) {
            if constexpr (Tile::kQInRegisters) {
#pragma unroll
              for (int e = 0; e < 4; ++e) a[mt][e] = q_frag[mt][ks][e];
            } else {
              LdMatrixX4(a[mt],
                         FragmentAddressX<kStride>(s_q, warp_row0 + mt * 16,
                                                   ks * 16, mma_lane));
            }
          }
#pragma unroll
          for (int nt = 0; nt < kSTiles; nt += 2) {
            uint32_t b[4];
            LdMatrixX4(
                b, FragmentAddressY<kStride>(t_k, nt * 8, ks * 16, mma_lane));
#pragma unroll
            for (int mt = 0; mt < kMTiles; ++mt) {
              Mma<kDtype>(s[mt][nt], a[mt], b[0], b[1]);
              Mma<kDtype>(s[mt][nt + 1], a[mt], b[2], b[3]);
            }
          }
        }
        // With a positive scale the maxima are taken over the raw scores
        // and the scale folds into the exponent's FFMA; otherwise the scores
        // are scaled first (post = 1).
        if (!positive_scale) {
#pragma unroll
          for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
            for (int nt = 0; nt < kSTiles; ++nt) {
#pragma unroll
              for (int e = 0; e < 4; ++e) s[mt][nt][e] *= scale_log2;
            }
          }
        }
        const bool need_mask = key0 + kBlockN > num_rows ||
                               (p.is_causal && key0 + kBlockN - 1 > warp_first);
        if (need_mask) {
#pragma unroll
          for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
            for (int nt = 0; nt < kSTiles; ++nt) {
#pragma unroll
              for (int e = 0; e < 4; ++e) {
                const int key = key0 + nt * 8 + 2 * mma_lane.pair + (e & 1);
                const int query =
                    warp_first + mt * 16 + mma_lane.group + (e >> 1) * 8;
                if (key >= num_rows || (p.is_causal && key > query)) {
                  s[mt][nt][e] = kMinusInf;
                }
              }
            }
          }
        }
        // Online softmax: new maxima, probabilities, running sums.
        float alpha[kMTiles][2];
        bool rescale = false;
#pragma unroll
        for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            float m = kMinusInf;
#pragma unroll
            for (int nt = 0; nt < kSTiles; ++nt) {
              m = fmaxf(m, fmaxf(s[mt][nt][2 * h], s[mt][nt][2 * h + 1]));
            }
            m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 1));
            m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 2));
            m = fmaxf(row_max[mt][h], m * post_scale);
            const float base = m == kMinusInf ? 0.0f : m;
            alpha[mt][h] = Exp2(row_max[mt][h] - base);
            rescale |= alpha[mt][h] != 1.0f;
            row_max[mt][h] = m;
            float sum = 0.0f;
#pragma unroll
            for (int nt = 0; nt < kSTiles; ++nt) {
#pragma unroll
              for (int e = 0; e < 2; ++e) {
                const float prob =
                    Exp2(fmaf(s[mt][nt][2 * h + e], post_scale, -base));
                s[mt][nt][2 * h + e] = prob;
                sum += prob;
              }
            }
            row_sum[mt][h] = row_sum[mt][h] * alpha[mt][h] + sum;
          }
        }
        // Dropout: the probabilities entered the sums undropped; the ones
        // that weigh v are dropped or scaled (keys past the row's are 0).
        if constexpr (kDropout) {
#pragma unroll
          for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
            for (int nt = 0; nt < kSTiles; ++nt) {
#pragma unroll
              for (int e = 0; e < 4; ++e) {
                const int key = key0 + nt * 8 + 2 * mma_lane.pair + (e & 1);
                const int query =
                    warp_first + mt * 16 + mma_lane.group + (e >> 1) * 8;
                if (s[mt][nt][e] != 0.0f) {
                  s[mt][nt][e] *= FlashDropoutFactor(p, w, query, key);
                }
              }
            }
          }
        }
        // Rescale the output only when some row maximum of the warp moved
        // (rare once the first tiles have been seen).
        if (__any_sync(0xffffffffu, rescale)) {
#pragma unroll
          for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
            for (int ot = 0; ot < kOTiles; ++ot) {
              acc_o[mt][ot][0] *= alpha[mt][0];
              acc_o[mt][ot][1] *= alpha[mt][0];
              acc_o[mt][ot][2] *= alpha[mt][1];
              acc_o[mt][ot][3] *= alpha[mt][1];
            }
          }
        }
      }
      if constexpr (Tile::kStages == 1) {
        CpAsyncWait<0>();
        __syncthreads();  // V tile landed; every warp is done with s_k
        if (tile + 1 < num_key_tiles) {
          LoadRows<kBlockN, Tile::kHeadDim, Tile::kThreads>(
              s_k, k_rows, k_step, next_key0, num_rows, chunks, tid);
          CpAsyncCommit();
        }
      }
      if (active) {
        // O += P V, P rounded to the input type.
#pragma unroll
        for (int kk = 0; kk < Tile::kKeySteps; ++kk) {
          uint32_t a[kMTiles][4];
#pragma unroll
          for (int mt = 0; mt < kMTiles; ++mt) {
            PackAFragment<kDtype>(a[mt], s[mt], kk);
          }
#pragma unroll
          for (int ot = 0; ot < kOTiles; ot += 2) {
            uint32_t b[4];
            LdMatrixX4Trans(
                b, FragmentAddressX<kStride>(t_v, kk * 16, ot * 8, mma_lane));
#pragma unroll
            for (int mt = 0; mt < kMTiles; ++mt) {
              Mma<kDtype>(acc_o[mt][ot], a[mt], b[0], b[1]);
              Mma<kDtype>(acc_o[mt][ot + 1], a[mt], b[2], b[3]);
            }
          }
        }
      }
      if constexpr (Tile::kStages == 2) {
        __syncthreads();  // every warp is done with this buffer
      }
    }

    DrainEmptyWalk(keys);
    // Epilogue: out = (1 / G) * O / rowsum, staged through this warp's own
    // rows of s_q (no other warp touches them) for 16-byte stores.
    __syncwarp();
    const int o_offset = w.first;
    const int rate = w.step;
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        float sum = row_sum[mt][h];
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        const float inverse = sum > 0.0f ? p.output_scale / sum : 0.0f;
        const int row = warp_row0 + mt * 16 + mma_lane.group + h * 8;
#pragma unroll
        for (int ot = 0; ot < kOTiles; ++ot) {
          *reinterpret_cast<uint32_t*>(s_q + row * kStride + ot * 8 +
                                       2 * mma_lane.pair) =
              PackPair<kDtype>(acc_o[mt][ot][2 * h] * inverse,
                               acc_o[mt][ot][2 * h + 1] * inverse);
        }
        const int query = j_begin + row;
        if (lse_segment != nullptr && mma_lane.pair == 0 && query < num_rows) {
          lse_segment[o_offset + query * rate] =
              sum > 0.0f ? (row_max[mt][h] + __log2f(sum)) * kLn2 : kMinusInf;
        }
      }
    }
    __syncwarp();
    StoreStagedRows<Tile::kWarpRows, Tile::kChunks, kStride>(
        SelectedRow0<T>(p.out, w), RowStep(p.out, w), s_q, warp_row0,
        warp_first, num_rows, chunks, lane);
  }
  ZeroUnselectedRows(SegmentStart<T>(p.out, w), p.out.stride_n, w, j_begin,
                     j_end, chunks, lse_segment, tid, Tile::kThreads);
}

// Launches the forward kernel over every group of `p` on `stream`; `general`
// is the launch's problem list (ProblemTable::AddBlocks(Tile::kBlockM)), or
// null for the closed form; `sparse` the device lists of a block-sparse call
// (FlashForwardArgs::sparse), or null.
template <class Tile>
cudaError_t LaunchFlashForward(const ForwardParams& p, cudaStream_t stream,
                               const ProblemIndex& general = ProblemIndex{},
                               const BlockLists& sparse = BlockLists{}) {
  void (*kernel)(FlashForwardArgs) = FlashForwardKernel<Tile, false>;
  if (p.dropout.enabled) kernel = FlashForwardKernel<Tile, true>;
  return LaunchForwardKernel<Tile>(kernel, p, stream, general, sparse);
}

}  // namespace gpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CUDA_FLASH_FORWARD_CUH_
