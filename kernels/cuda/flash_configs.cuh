// File: flash_configs.cuh
//
// The tile shapes of the fused kernels per (dtype, padded head_dim), and the
// generic Run* entry points that the per-instantiation .cu files
// instantiate. Head dimensions that are not a tile size run on the next
// larger one with zero-filled columns.

#ifndef KERNELS_CUDA_FLASH_CONFIGS_CUH_
#define KERNELS_CUDA_FLASH_CONFIGS_CUH_

#include <cuda_runtime.h>

#include <type_traits>

#include "kernels/cuda/flash_attention_instances.h"
#include "kernels/cuda/flash_backward.cuh"
#include "kernels/cuda/flash_backward_wgmma.cuh"
#include "kernels/cuda/flash_forward.cuh"
#include "kernels/cuda/flash_forward_wgmma.cuh"
#include "kernels/cuda/flash_forward_ws.cuh"
#include "kernels/cuda/fused_backward.h"
#include "kernels/dilated_params.h"

namespace dilated {
namespace kernels {
namespace gpu {

// The tile types of the fused kernels for one (dtype, padded head_dim); a
// member is void where that kernel does not exist for the head_dim.
//   Forward           the mma.sync forward kernel.
//   ForwardWgmma      where not void, replaces Forward on devices that run
//                     sm_90a code (WgmmaAvailable()): a WgmmaForwardTile
//                     (flash_forward_wgmma.cuh) or a WsForwardTile, the
//                     warp-specialized kernel (flash_forward_ws.cuh).
//   ForwardWgmmaSparse  the same for block-sparse calls, whose row tiles must
//                     lie inside one 128-row layout block (tile_walk.h).
//   ForwardWgmmaSparseLongRows  where not void, replaces ForwardWgmmaSparse
//                     for layouts whose query blocks walk, on average, at
//                     least kSparseLongRowBlocks key blocks
//                     (SparseRowsAreLong).
//   KeyValue          the mma.sync dK/dV kernel; dV alone when KeyOnly is not
//                     void.
//   KeyOnly           where not void, a second pass that computes dK.
//   Query             the mma.sync dQ kernel.
//   QueryWgmma,       where KeyValueWgmma is not void, the sm_90a backward:
//   QueryWgmmaCausal, dQ (QueryWgmmaCausal under the causal mask) runs first
//   KeyValueWgmma     and writes the delta rows that dK/dV then reads;
//   KeyOnlyWgmma      where not void, KeyValueWgmma computes dV alone and
//                     this second launch dK.
//   FusedBackward     where not void, the one-kernel sm_90a backward (a
//                     FusedQuery mode of the dK/dV kernel), run where
//                     fused_backward.h allows it.
// Why these shapes: docs/PERFORMANCE_CUDA.md, "FlashConfig tile shapes".
template <DataType kDtype, int kHeadDim>
struct FlashConfig;

// Where the head_dim 64 block-sparse forward changes tiles: one warpgroup of
// 64 rows per block (three blocks an SM) is fastest on short rows, the
// warp-specialized tile of two 64-row consumers sharing a producer on long
// ones (docs/BLOCK_SPARSE.md, "Choosing the head_dim 64 forward tile by the
// rows' length": the two cross between 17 and 33 key blocks a row).
inline constexpr int64_t kSparseLongRowBlocks = 24;

// Returns whether the query blocks of `sparse` walk at least
// kSparseLongRowBlocks key blocks on average; under the causal mask half of
// a row's blocks are counted, as about half of them lie past the diagonal
// (and are skipped) for the symmetric patterns.
inline bool SparseRowsAreLong(const BlockLists& sparse, bool causal) {
  const int64_t rows = sparse.heads * sparse.num_blocks;
  const int64_t walked = causal ? sparse.entries / 2 : sparse.entries;
  return rows > 0 && walked >= kSparseLongRowBlocks * rows;
}

template <DataType kDtype>
struct FlashConfig<kDtype, 32> {
  using FusedBackward = void;
  using ForwardWgmma = void;
  using ForwardWgmmaSparse = void;
  using ForwardWgmmaSparseLongRows = void;
  using KeyValueWgmma = void;
  using KeyOnlyWgmma = void;
  using QueryWgmma = void;
  using QueryWgmmaCausal = void;
  using Forward = ForwardTile<kDtype, 32, 128, 64, 4, true, 2, 2>;
  using KeyValue =
      KeyValueTile<kDtype, 32, 64, 4, true, KeyValuePart::kBoth, 2>;
  using KeyOnly = void;
  using Query = QueryTile<kDtype, 32, 64, 4, true, 2>;
};

template <DataType kDtype>
struct FlashConfig<kDtype, 64> {
  using ForwardWgmma = WsForwardTile<kDtype, 3, 128, 2, 64, false, true>;
  using ForwardWgmmaSparse = WgmmaForwardTile<kDtype, 1, 128, 3>;
  using ForwardWgmmaSparseLongRows =
      WsForwardTile<kDtype, 2, 128, 2, 64, true, true>;
  using KeyValueWgmma = WgmmaKeyValueTile<kDtype, 128, 1>;
  using KeyOnlyWgmma = void;
  using FusedBackward =
      WgmmaKeyValueTile<kDtype, 128, 1, 64, 0, 2, FusedQuery::kOrdered>;
  using QueryWgmma = WgmmaQueryTile<kDtype, 128, 2, 64, 4>;
  using QueryWgmmaCausal = WgmmaQueryTile<kDtype, 64, 3>;
  using Forward = ForwardTile<kDtype, 64, 128, 64, 4, true, 2, 2>;
  using KeyValue =
      KeyValueTile<kDtype, 64, 64, 4, true, KeyValuePart::kBoth, 2>;
  using KeyOnly = void;
  using Query = QueryTile<kDtype, 64, 64, 4, true, 2>;
};

template <DataType kDtype>
struct FlashConfig<kDtype, 128> {
  using ForwardWgmma = WsForwardTile<kDtype, 2, 128, 2, 128, true, true>;
  using ForwardWgmmaSparse = ForwardWgmma;
  using ForwardWgmmaSparseLongRows = void;
  using KeyValueWgmma = WgmmaKeyValueTile<kDtype, 64, 2, 128>;
  using KeyOnlyWgmma = void;
  using FusedBackward =
      WgmmaKeyValueTile<kDtype, 64, 1, 128, 0, 2, FusedQuery::kOrdered>;
  using QueryWgmma = WgmmaQueryTile<kDtype, 64, 2, 128>;
  using QueryWgmmaCausal = WgmmaQueryTile<kDtype, 64, 2, 128>;
  using Forward = ForwardTile<kDtype, 128, 128, 32, 4, false, 2, 2>;
  using KeyValue =
      KeyValueTile<kDtype, 128, 32, 4, false, KeyValuePart::kBoth, 2>;
  using KeyOnly = void;
  using Query = QueryTile<kDtype, 128, 64, 8, false, 1>;
};

template <DataType kDtype>
struct FlashConfig<kDtype, 256> {
  using FusedBackward = void;
  using ForwardWgmma = WsForwardTile<kDtype, 2, 64, 2, 256, false, true>;
  using ForwardWgmmaSparse = ForwardWgmma;
  using ForwardWgmmaSparseLongRows = void;
  using KeyValueWgmma =
      WgmmaKeyValueTile<kDtype, 64, 1, 256, 0, 1, FusedQuery::kNone,
                        KeyValuePart::kValueOnly>;
  using KeyOnlyWgmma =
      WgmmaKeyValueTile<kDtype, 64, 1, 256, 0, 1, FusedQuery::kNone,
                        KeyValuePart::kKeyOnly>;
  using QueryWgmma = WgmmaQueryTile<kDtype, 64, 1, 256>;
  using QueryWgmmaCausal = QueryWgmma;
  using Forward = ForwardTile<kDtype, 256, 64, 32, 4, false, 1>;
  using KeyValue =
      KeyValueTile<kDtype, 256, 32, 4, false, KeyValuePart::kValueOnly, 1>;
  using KeyOnly =
      KeyValueTile<kDtype, 256, 32, 4, false, KeyValuePart::kKeyOnly, 1>;
  using Query = QueryTile<kDtype, 256, 32, 4, false, 1>;
};

// Runs the forward kernel of `Tile` through `launch` on the call's path:
// the closed form without `problems`, else after uploading the problem
// table; `sparse` as FlashForwardArgs::sparse.
template <class Tile>
cudaError_t RunForwardTile(
    cudaError_t (*launch)(const ForwardParams&, cudaStream_t,
                          const ProblemIndex&, const BlockLists&),
    const ForwardParams& params, const FlashProblems* problems,
    const BlockLists& sparse, cudaStream_t stream) {
  ProblemTable table(problems, params);
  const ProblemIndex index = table.AddBlocks(Tile::kBlockM);
  const cudaError_t error = table.Upload(stream);
  if (error != cudaSuccess) return error;
  return launch(params, stream, index, sparse);
}

// RunForwardTile with the launcher of an sm_90a tile type.
template <class Tile>
cudaError_t RunForwardWgmmaTile(const ForwardParams& params,
                                const FlashProblems* problems,
                                const BlockLists& sparse, cudaStream_t stream) {
  if constexpr (IsWsForwardTile<Tile>::value) {
    return RunForwardTile<Tile>(&LaunchFlashForwardWs<Tile>, params, problems,
                                sparse, stream);
  } else {
    return RunForwardTile<Tile>(&LaunchFlashForwardWgmma<Tile>, params,
                                problems, sparse, stream);
  }
}

template <DataType kDtype, int kHeadDim>
cudaError_t RunFlashForward(const ForwardParams& params,
                            const FlashProblems* problems,
                            const BlockLists& sparse, cudaStream_t stream) {
  using Config = FlashConfig<kDtype, kHeadDim>;
  if constexpr (!std::is_void_v<typename Config::ForwardWgmma>) {
    // Dropout runs on the mma.sync kernels (the wgmma ones do not apply it).
    if (WgmmaAvailable() && !params.dropout.enabled) {
      if (sparse.row_begin != nullptr) {
        using LongRows = typename Config::ForwardWgmmaSparseLongRows;
        if constexpr (!std::is_void_v<LongRows>) {
          if (SparseRowsAreLong(sparse, params.is_causal)) {
            return RunForwardWgmmaTile<LongRows>(params, problems, sparse,
                                                 stream);
          }
        }
        return RunForwardWgmmaTile<typename Config::ForwardWgmmaSparse>(
            params, problems, sparse, stream);
      }
      return RunForwardWgmmaTile<typename Config::ForwardWgmma>(
          params, problems, sparse, stream);
    }
  }
  using Tile = typename Config::Forward;
  return RunForwardTile<Tile>(&LaunchFlashForward<Tile>, params, problems,
                              sparse, stream);
}

// The sm_90a backward: the query kernel writes the delta rows the key/value
// kernel reads; a KeyOnlyTile, where not void, computes dK after it.
template <class QueryTile, class KeyValueTile, class KeyOnlyTile>
cudaError_t RunBackwardWgmma(const FlashBackwardArgs& args,
                             const FlashProblems* problems,
                             cudaStream_t stream) {
  ProblemTable table(problems, args.params.forward);
  const ProblemIndex query = table.AddBlocks(QueryTile::kBlockM);
  const ProblemIndex key_value = table.AddBlocks(KeyValueTile::kBlockN);
  cudaError_t error = table.Upload(stream);
  if (error != cudaSuccess) return error;
  error = LaunchFlashQueryWgmma<QueryTile>(args, stream, query);
  if (error != cudaSuccess) return error;
  error = LaunchFlashKeyValueWgmma<KeyValueTile>(args, stream, key_value);
  if constexpr (!std::is_void_v<KeyOnlyTile>) {
    static_assert(KeyOnlyTile::kBlockN == KeyValueTile::kBlockN,
                  "both launches walk the same key blocks");
    if (error != cudaSuccess) return error;
    error = LaunchFlashKeyValueWgmma<KeyOnlyTile>(args, stream, key_value);
  }
  return error;
}

template <DataType kDtype, int kHeadDim>
cudaError_t RunFlashBackward(const BackwardParams& params,
                             const FlashProblems* problems,
                             const BlockLists& sparse, float* delta,
                             cudaStream_t stream) {
  using Config = FlashConfig<kDtype, kHeadDim>;
  FlashBackwardArgs args = MakeFlashBackwardArgs(params, delta);
  args.sparse = sparse;
  if constexpr (!std::is_void_v<typename Config::FusedBackward>) {
    if (WgmmaAvailable() && problems == nullptr &&
        sparse.row_begin == nullptr && FusedBackwardApplies(params)) {
      // The workspace holds the delta rows, then the dQ sums and turns.
      const FusedBackwardLayout layout =
          FusedBackwardLayoutOf(params, FlashDeltaBytes(params));
      unsigned char* workspace = reinterpret_cast<unsigned char*>(delta);
      cudaError_t error = LaunchFlashDelta<kDtype>(params, delta, stream);
      if (error != cudaSuccess) return error;
      return RunFusedBackward<typename Config::FusedBackward>(
          args, reinterpret_cast<float*>(workspace + layout.sums_offset),
          reinterpret_cast<int*>(workspace + layout.turns_offset), stream);
    }
  }
  if constexpr (!std::is_void_v<typename Config::KeyValueWgmma>) {
    if (WgmmaAvailable() && !params.forward.dropout.enabled) {
      using KeyValue = typename Config::KeyValueWgmma;
      using KeyOnly = typename Config::KeyOnlyWgmma;
      return params.forward.is_causal
                 ? RunBackwardWgmma<typename Config::QueryWgmmaCausal, KeyValue,
                                    KeyOnly>(args, problems, stream)
                 : RunBackwardWgmma<typename Config::QueryWgmma, KeyValue,
                                    KeyOnly>(args, problems, stream);
    }
  }
  using KeyValue = typename Config::KeyValue;
  using KeyOnly = typename Config::KeyOnly;
  using Query = typename Config::Query;
  ProblemTable table(problems, params.forward);
  const ProblemIndex delta_rows = table.AddRows();
  const ProblemIndex key_value = table.AddBlocks(KeyValue::kBlockN);
  [[maybe_unused]] ProblemIndex key_only = key_value;
  if constexpr (!std::is_void_v<KeyOnly>) {
    key_only = table.AddBlocks(KeyOnly::kBlockN);
  }
  const ProblemIndex query = table.AddBlocks(Query::kBlockM);
  cudaError_t error = table.Upload(stream);
  if (error != cudaSuccess) return error;
  error = LaunchFlashDelta<kDtype>(params, delta, stream, delta_rows);
  if (error != cudaSuccess) return error;
  error = LaunchFlashKeyValue<KeyValue>(args, stream, key_value);
  if (error != cudaSuccess) return error;
  if constexpr (!std::is_void_v<KeyOnly>) {
    error = LaunchFlashKeyValue<KeyOnly>(args, stream, key_only);
    if (error != cudaSuccess) return error;
  }
  return LaunchFlashQuery<Query>(args, stream, query);
}

}  // namespace gpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CUDA_FLASH_CONFIGS_CUH_
