// File: flash_forward_ws.cuh
//
// The warp-specialized forward kernel for Hopper (sm_90a): the contract and
// the per-warpgroup tile step of flash_forward_wgmma.cuh, with the loads
// taken off the consumers. A block has three or four warpgroups:
//  - the producer (the last one) copies Q once and the K and V tiles of the
//    walk into kStages-deep rings, by TMA from one thread where the group's
//    view has a tensor map (tensor_map.cuh) and with cp.async from all 128
//    otherwise; each copy completes on an mbarrier ("full"), and the
//    producer reuses a buffer only after all consumers have arrived on its
//    "empty" mbarrier. It keeps few registers (setmaxnreg) and zeroes the
//    segment positions that are not rows of the block's group (with TMA
//    while the copies run, with cp.async once they are issued);
//  - two or three consumers own 64 query rows each and run the step of the
//    wgmma kernel (S of the next tile and P V of this one issued back to
//    back, the softmax between them) with the registers the producer gave
//    up. With kPingPong they take turns issuing their products under named
//    barriers, so that one warpgroup's softmax runs while another's products
//    occupy the tensor cores.
// No consumer waits at a block-wide barrier: each waits only for the tiles
// it reads.
//
// Included by the per-(head_dim, dtype) instantiation files and the tile
// sweep only.

#ifndef KERNELS_CUDA_FLASH_FORWARD_WS_CUH_
#define KERNELS_CUDA_FLASH_FORWARD_WS_CUH_

#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "kernels/cuda/async_barrier.cuh"
#include "kernels/cuda/flash_forward_wgmma.cuh"
#include "kernels/cuda/tensor_map.cuh"

namespace dilated {
namespace kernels {
namespace gpu {

// Compile-time shape: kConsumers consumer warpgroups (2 or 3) of 64 query
// rows and one producer; kBlockN-key tiles in rings of kStages K and kStages
// V buffers; head_dim padded to kHeadDim, one, two or four 64-column panels
// (at 256, 128 rows of Q and two stages of 64-key K and V tiles take 192 KiB
// of shared memory); with kFmaExpEveryT = k > 0 the softmax takes every k-th
// group of 8 keys' exponentials on the FMA pipe (Exp2Spread).
template <DataType kDtypeT, int kConsumersT, int kBlockNT, int kStagesT,
          int kHeadDimT, bool kQInRegistersT, bool kPingPongT,
          int kFmaExpEveryT = 0>
struct WsForwardTile {
  using T = typename Element<kDtypeT>::Type;
  static constexpr DataType kDtype = kDtypeT;
  static constexpr int kHeadDim = kHeadDimT;
  static constexpr int kPanels = kHeadDim / 64;
  static constexpr int kWarpgroups = kConsumersT;  // consumers
  static constexpr int kBlockM = 64 * kWarpgroups;
  static constexpr int kBlockN = kBlockNT;
  static constexpr int kScores = kBlockN / 2;
  static constexpr int kStages = kStagesT;
  static constexpr int kConsumerThreads = 128 * kWarpgroups;
  static constexpr int kThreads = kConsumerThreads + 128;
  // One block per SM: the stage rings take most of its shared memory.
  static constexpr int kMinBlocks = 1;
  static constexpr bool kQInRegisters = kQInRegistersT;
  // Whether, under a causal mask, a consumer can meet key tiles that start
  // after its last row while its block still walks them (the kernel's
  // consumer loop).
  static constexpr bool kCausalSkips =
      kBlockM > kBlockN || kBlockN % kBlockM != 0;
  static constexpr bool kPingPong = kPingPongT;
  static constexpr int kFmaExpEvery = kFmaExpEveryT;
  static constexpr int kQSteps = kQInRegisters ? 4 * kPanels : 1;
  static constexpr int kRowBytes = kHeadDim * 2;
  static constexpr int kQBytes = kBlockM * kRowBytes;
  static constexpr int kTileBytes = kBlockN * kRowBytes;
  // Launched at 65536 / kThreads registers a thread (168 or 128); the
  // producer gives all but kProducerRegisters back to the consumers.
  static constexpr int kProducerRegisters = kWarpgroups == 2 ? 40 : 32;
  static constexpr int kConsumerRegisters = kWarpgroups == 2 ? 232 : 160;
  // Q, the K ring, the V ring, and slack to align the base to 1024 bytes.
  static constexpr size_t kSmemBytes =
      kQBytes + 2 * kStages * kTileBytes + 1024;
  static_assert(kWarpgroups == 2 || kWarpgroups == 3, "2 or 3 consumers");
  static_assert(kBlockN == 64 || kBlockN == 128, "m64n64 or m64n128 scores");
  static_assert(kHeadDim == 64 || kHeadDim == 128 || kHeadDim == 256,
                "one, two or four panels");
  // At head_dim 256 the 64 x 256 output accumulators alone take 128
  // registers a thread, so Q stays in shared memory.
  static_assert(!(kQInRegisters && kHeadDim == 256),
                "Q in registers only up to head_dim 128");
  static_assert(kProducerRegisters + kWarpgroups * kConsumerRegisters <= 512,
                "the block's 65536 registers over its threads");
};

// Whether a forward tile type is a WsForwardTile (launched by
// LaunchFlashForwardWs rather than LaunchFlashForwardWgmma).
template <class Tile>
struct IsWsForwardTile : std::false_type {};
template <DataType kDtype, int kConsumers, int kBlockN, int kStages,
          int kHeadDim, bool kQInRegisters, bool kPingPong, int kFmaExpEvery>
struct IsWsForwardTile<
    WsForwardTile<kDtype, kConsumers, kBlockN, kStages, kHeadDim, kQInRegisters,
                  kPingPong, kFmaExpEvery>> : std::true_type {};

// The mbarriers of one block, in static shared memory: Q's, and a full and
// an empty one per K and per V buffer.
template <int kStages>
struct WsBarriers {
  uint64_t q_full;
  uint64_t k_full[kStages];
  uint64_t v_full[kStages];
  uint64_t k_empty[kStages];
  uint64_t v_empty[kStages];
};

// Named barrier ids of the consumers' turns (0 is __syncthreads).
constexpr int kTurnBarrierBase = 1;

// The warp-specialized kernel's launch arguments: the forward's, and where
// `tma` is set, the tensor maps its producer copies through (group i's at
// maps[i]).
struct FlashForwardWsArgs {
  FlashForwardArgs base;
  bool tma;
  SelectedRowMaps maps[kMaxTmaGroups];
};

template <class Tile>
__global__ void __launch_bounds__(Tile::kThreads, Tile::kMinBlocks)
    FlashForwardWsKernel(const __grid_constant__ FlashForwardWsArgs ws_args) {
#if DA_WGMMA_ENABLED
  const FlashForwardArgs& args = ws_args.base;
  using T = typename Tile::T;
  constexpr DataType kDtype = Tile::kDtype;
  constexpr int kBlockM = Tile::kBlockM;
  constexpr int kBlockN = Tile::kBlockN;
  constexpr int kTileBytes = Tile::kTileBytes;
  constexpr int kPanels = Tile::kPanels;
  constexpr int kStages = Tile::kStages;
  constexpr int kQPanelBytes = kBlockM * 128;

  extern __shared__ __align__(16) unsigned char smem_raw[];
  __shared__ WsBarriers<kStages> bars;
  unsigned char* smem = AlignedSharedBase(smem_raw);
  const uint32_t s_q = SharedAddress(smem);
  const uint32_t s_k = s_q + Tile::kQBytes;
  const uint32_t s_v = s_k + kStages * kTileBytes;
  const uint32_t q_full = SharedAddress(&bars.q_full);
  auto k_full = [&](int s) { return SharedAddress(&bars.k_full[s]); };
  auto v_full = [&](int s) { return SharedAddress(&bars.v_full[s]); };
  auto k_empty = [&](int s) { return SharedAddress(&bars.k_empty[s]); };
  auto v_empty = [&](int s) { return SharedAddress(&bars.v_empty[s]); };

  const int tid = threadIdx.x;
  if (tid == 0) {
    // Full: one arrival per producer thread (one in all with TMA, which
    // counts the bytes instead). Empty: one per consumer warp.
    const int producer_arrivals = ws_args.tma ? 1 : 128;
    MbarrierInit(q_full, producer_arrivals);
    for (int s = 0; s < kStages; ++s) {
      MbarrierInit(k_full(s), producer_arrivals);
      MbarrierInit(v_full(s), producer_arrivals);
      MbarrierInit(k_empty(s), Tile::kConsumerThreads / 32);
      MbarrierInit(v_empty(s), Tile::kConsumerThreads / 32);
    }
  }
  __syncthreads();

  const ForwardParams& p = args.params;
  const WorkItem w = DecodeBlock(args.block_begin, args.general, p, blockIdx.x,
                                 kBlockM, p.is_causal);
  const int num_rows = w.length;
  const int chunks = static_cast<int>(p.head_dim / 8);
  const int j_begin = w.block * kBlockM;
  const int j_end = min(j_begin + kBlockM, num_rows);
  float* lse_segment =
      p.lse == nullptr ? nullptr
                       : SegmentStart(p.lse, p.lse_stride_b, p.lse_stride_h, w);
  const int key_limit = p.is_causal ? j_end : num_rows;
  const TileWalk keys =
      num_rows > 0 ? KeyTilesOf<kBlockN>(args.sparse, w, j_begin, key_limit)
                   : ContiguousTiles(0, 0);
  const int num_key_tiles = keys.count;
  const int warpgroup = WarpUniform(tid / 128);

  if (warpgroup == Tile::kWarpgroups) {
    // The producer.
    ReleaseRegistersTo<Tile::kProducerRegisters>();
    const int ptid = tid - Tile::kConsumerThreads;
    if (ws_args.tma) {
      // One thread issues every copy while the other three warps zero the
      // positions that are not rows of the group.
      if (ptid == 0 && num_rows > 0) {
        const SelectedRowMaps& maps = ws_args.maps[w.group];
        const int segment =
            static_cast<int>(w.segment_row / p.groups[w.group].segment_length);
        auto load = [&](uint32_t dst, const CUtensorMap* map, uint32_t bar,
                        int rows, int first) {
          MbarrierArriveExpectBytes(bar, kPanels * rows * 128);
#pragma unroll
          for (int panel = 0; panel < kPanels; ++panel) {
            TmaLoadSelectedRows(dst + panel * rows * 128, map, bar, 64 * panel,
                                first, static_cast<int>(w.head), segment,
                                static_cast<int>(w.batch));
          }
        };
        load(s_q, &maps.q, q_full, kBlockM, j_begin);
        for (int tile = 0; tile < num_key_tiles; ++tile) {
          const int stage = tile % kStages;
          const uint32_t reuse_parity = ((tile / kStages) & 1) ^ 1;
          const int first = keys.Tile(tile) * kBlockN;
          if (tile >= kStages) MbarrierWait(k_empty(stage), reuse_parity);
          load(s_k + stage * kTileBytes, &maps.k, k_full(stage), kBlockN,
               first);
          if (tile >= kStages) MbarrierWait(v_empty(stage), reuse_parity);
          load(s_v + stage * kTileBytes, &maps.v, v_full(stage), kBlockN,
               first);
        }
      }
      if (ptid >= 32) {
        ZeroUnselectedRows(SegmentStart<T>(p.out, w), p.out.stride_n, w,
                           j_begin, j_end, chunks, lse_segment, ptid - 32, 96);
      }
      return;
    }
    if (num_rows > 0) {
      const T* k_rows = SelectedRow0<const T>(p.k, w);
      const T* v_rows = SelectedRow0<const T>(p.v, w);
      const int64_t k_step = RowStep(p.k, w);
      const int64_t v_step = RowStep(p.v, w);
      LoadPanelsSwizzled<kBlockM, 128, kPanels>(
          s_q, SelectedRow0<const T>(p.q, w), RowStep(p.q, w), j_begin,
          num_rows, chunks, ptid);
      CpAsyncArriveOnCompletion(q_full);
      for (int tile = 0; tile < num_key_tiles; ++tile) {
        const int stage = tile % kStages;
        const uint32_t reuse_parity = ((tile / kStages) & 1) ^ 1;
        const int first = keys.Tile(tile) * kBlockN;
        if (tile >= kStages) MbarrierWait(k_empty(stage), reuse_parity);
        LoadPanelsSwizzled<kBlockN, 128, kPanels>(s_k + stage * kTileBytes,
                                                  k_rows, k_step, first,
                                                  num_rows, chunks, ptid);
        CpAsyncArriveOnCompletion(k_full(stage));
        if (tile >= kStages) MbarrierWait(v_empty(stage), reuse_parity);
        LoadPanelsSwizzled<kBlockN, 128, kPanels>(s_v + stage * kTileBytes,
                                                  v_rows, v_step, first,
                                                  num_rows, chunks, ptid);
        CpAsyncArriveOnCompletion(v_full(stage));
      }
      CpAsyncWait<0>();
    }
    ZeroUnselectedRows(SegmentStart<T>(p.out, w), p.out.stride_n, w, j_begin,
                       j_end, chunks, lse_segment, ptid, 128);
    return;
  }
  if (num_rows == 0) return;

  // A consumer.
  AcquireRegistersTo<Tile::kConsumerRegisters>();
  const int warp = (tid % 128) / 32;
  const int lane = tid % 32;
  const int warp_first = j_begin + warpgroup * 64 + warp * 16;
  // One arrival per consumer warp on an empty barrier: lane 0 after the
  // warp's share of the products that read the buffer has completed.
  auto release = [&](uint32_t bar) {
    if (lane == 0) MbarrierArrive(bar);
  };
  auto wait_full = [&](uint32_t bar, int tile) {
    MbarrierWait(bar, (tile / kStages) & 1);
    FenceSharedForAsyncProxy();  // cp.async wrote it; wgmma reads it
  };
  // A consumer's wgmma run in loops whose trip counts ptxas can prove
  // uniform over the warpgroup, with no other branch around them: where a
  // branch it cannot prove warpgroup-uniform guards a wgmma, it serializes
  // every wgmma of the kernel (ptxas -v reports C7520), which cost this kernel
  // 20-30%. Rows the causal mask hides from part of a tile are masked.
  //
  // Turns, round robin: warpgroup g issues after Sync on its barrier and
  // passes the turn with Arrive on the next one's; the last warpgroup hands
  // warpgroup 0 the first turn. Each barrier counts the two warpgroups that
  // meet there.
  const int my_turn = kTurnBarrierBase + warpgroup;
  const int other_turn = kTurnBarrierBase + (warpgroup + 1) % Tile::kWarpgroups;
  auto take_turn = [&] {
    if constexpr (Tile::kPingPong) {
      NamedBarrierSync(my_turn, 256);
    }
  };
  auto pass_turn = [&] {
    if constexpr (Tile::kPingPong) {
      NamedBarrierArrive(other_turn, 256);
    }
  };

  float acc_o[kPanels][32];
  float s[Tile::kScores];
  uint32_t prob[kBlockN / 16][4];
  ZeroAccumulators(acc_o);
  OnlineSoftmaxRows softmax = OnlineSoftmaxRows::Start(
      num_rows, warp_first, lane, p.is_causal, p.softmax_scale);
  const uint32_t q_rows_of_group = s_q + warpgroup * 64 * 128;
  uint32_t q_frag[Tile::kQSteps][4];
  wait_full(q_full, 0);
  if constexpr (Tile::kQInRegisters) {
    LoadQueryFragments(q_frag, q_rows_of_group, kQPanelBytes, warp, lane);
  }
  // Under a causal mask on the dense walk (key tiles 0, 1, ...), the key
  // tiles that start after this warpgroup's last row hide every key from all
  // of its rows: it runs the products of its first `my_tiles` tiles only and
  // then takes its remaining turns without issuing, releasing those tiles'
  // buffers once they are full (an earlier arrival could complete the
  // previous fill's phase for warps still reading it). The trip counts are
  // uniform over the warpgroup (WarpUniform), so no wgmma is serialized.
  // Blocks whose rows start at multiples of the key tile's length (kBlockM a
  // divisor of kBlockN) have no such tile, and keep the plain loop.
  int my_tiles = num_key_tiles;
  if (Tile::kCausalSkips && p.is_causal && args.sparse.row_begin == nullptr &&
      num_key_tiles > 0) {
    const int my_end = min(j_begin + 64 * (warpgroup + 1), j_end);
    my_tiles = WarpUniform(
        max(1, min(num_key_tiles, (my_end + kBlockN - 1) / kBlockN)));
  }
  if (Tile::kPingPong && warpgroup == Tile::kWarpgroups - 1) pass_turn();
  if (num_key_tiles > 0) {
    wait_full(k_full(0), 0);
    take_turn();
    WgmmaFence();
    IssueScores<Tile>(s, q_rows_of_group, q_frag, s_k);
    pass_turn();
    WgmmaWait<0>();
    WgmmaPinAccumulators(s);
    release(k_empty(0));
    float alpha[2];
    // O is still 0.
    softmax.Update<Tile::kFmaExpEvery>(s, keys.Tile(0) * kBlockN, alpha);
    PackScores<kDtype>(s, prob);
  }
  for (int tile = 0; tile + 1 < my_tiles; ++tile) {
    const int next = tile + 1;
    wait_full(k_full(next % kStages), next);
    wait_full(v_full(tile % kStages), tile);
    take_turn();
    WgmmaFence();
    IssueScores<Tile>(s, q_rows_of_group, q_frag,
                      s_k + (next % kStages) * kTileBytes);
    IssueValues<Tile>(acc_o, prob, s_v + (tile % kStages) * kTileBytes);
    pass_turn();
    WgmmaWait<1>();  // S, the older group
    WgmmaPinAccumulators(s);
    release(k_empty(next % kStages));
    float alpha[2];
    const bool rescale =
        softmax.Update<Tile::kFmaExpEvery>(s, keys.Tile(next) * kBlockN, alpha);
    WgmmaWait<0>();  // P V: O and the P registers are free again
    WgmmaPinAccumulators(acc_o);
    release(v_empty(tile % kStages));
    if (rescale) RescaleRows(acc_o, alpha);
    PackScores<kDtype>(s, prob);
  }
  if (num_key_tiles > 0) {
    const int last = my_tiles - 1;
    wait_full(v_full(last % kStages), last);
    take_turn();
    WgmmaFence();
    IssueValues<Tile>(acc_o, prob, s_v + (last % kStages) * kTileBytes);
    pass_turn();
    WgmmaWait<0>();
    WgmmaPinAccumulators(acc_o);
    // The producer refills this buffer where this warpgroup skips kStages
    // or more tiles.
    if constexpr (Tile::kCausalSkips) release(v_empty(last % kStages));
  }
  if constexpr (Tile::kCausalSkips) {
    for (int tile = my_tiles; tile < num_key_tiles; ++tile) {
      const int stage = tile % kStages;
      take_turn();
      pass_turn();
      wait_full(k_full(stage), tile);
      release(k_empty(stage));
      wait_full(v_full(stage), tile);
      release(v_empty(stage));
    }
  }
  // Warpgroup 0 takes the turn that the last warpgroup passed last, so that
  // no arrival is left on a named barrier when the block ends.
  if (Tile::kPingPong && warpgroup == 0) take_turn();

  StoreForwardRows<Tile>(p, w, softmax, acc_o,
                         smem + warpgroup * 64 * 128 + warp * 16 * 128,
                         lse_segment, chunks, lane);
#else
  __trap();  // never launched: WgmmaAvailable() is false without sm_90a
#endif
}

// Encodes the tensor maps of every group of `p` for Tile's boxes; false
// where some group cannot be copied by TMA (EncodeSelectedRowMap) or the keys
// do not share the queries' geometry.
template <class Tile>
bool EncodeWsTensorMaps(const ForwardParams& p,
                        SelectedRowMaps (&maps)[kMaxTmaGroups]) {
  if (!TmaCopiesApply(p)) return false;
  for (int i = 0; i < p.num_groups; ++i) {
    const GroupParams& g = p.groups[i];
    if (!EncodeSelectedRowMap(p.q, p, g, Tile::kBlockM, &maps[i].q) ||
        !EncodeSelectedRowMap(p.k, p, g, Tile::kBlockN, &maps[i].k) ||
        !EncodeSelectedRowMap(p.v, p, g, Tile::kBlockN, &maps[i].v)) {
      return false;
    }
  }
  return true;
}

// Launches the warp-specialized forward kernel over every group of `p` on
// `stream`; `general` and `sparse` as for LaunchFlashForward. The producer
// copies by TMA on the closed form where `allow_tma` and every group's view
// allows it (EncodeSelectedRowMap), by cp.async otherwise.
template <class Tile>
cudaError_t LaunchFlashForwardWsCopyingBy(bool allow_tma,
                                          const ForwardParams& p,
                                          cudaStream_t stream,
                                          const ProblemIndex& general,
                                          const BlockLists& sparse) {
  FlashForwardWsArgs args;
  int64_t blocks = 0;
  args.base = MakeForwardArgs(p, general, sparse, Tile::kBlockM, &blocks);
  args.tma = allow_tma && general.problems == nullptr &&
             EncodeWsTensorMaps<Tile>(p, args.maps);
  return LaunchWithSmem<Tile>(FlashForwardWsKernel<Tile>, args, blocks, stream);
}

// The kernel as it ships: TMA wherever it applies.
template <class Tile>
cudaError_t LaunchFlashForwardWs(const ForwardParams& p, cudaStream_t stream,
                                 const ProblemIndex& general = ProblemIndex{},
                                 const BlockLists& sparse = BlockLists{}) {
  return LaunchFlashForwardWsCopyingBy<Tile>(true, p, stream, general, sparse);
}

}  // namespace gpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CUDA_FLASH_FORWARD_WS_CUH_
