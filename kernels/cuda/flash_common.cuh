// File: flash_common.cuh
//
// What the flash kernels share: the launch arguments (the POD params plus
// the work decomposition), the decoding of a block index into a work item
// (one problem on one head, one block of its rows), the strided addressing
// of docs/ARCHITECTURE.md section 1, the asynchronous tile loader and the
// zeroing of the positions of a segment that are not rows of its problem.
//
// A problem's rows form a strided view: row j of a work item lives at
// position first + j * step of its segment, so it is
//   data + batch * stride_b + (segment_row + first) * stride_n
//        + head * stride_h + j * (step * stride_n)
// and every kernel reads and writes through that view directly (no gather,
// no scatter, no temporaries).
//
// The work items of a launch come from one of two decompositions, chosen
// per launch (flash_attention.h):
//   - closed form (ProblemIndex::problems null): fixed-length input whose
//     segments divide seq_len, no mask. Per group, block_begin counts the
//     thread blocks of (batch, segment, head, row block) and DecodeWork
//     derives the item arithmetically: segment_row = m * s, first = o,
//     step = r, length = ceil((s - o) / r), extent = s.
//   - problem list: the host's FlashProblem array and a prefix count of the
//     launch's thread blocks per problem (num_heads x row blocks, at least
//     one so that a problem without rows still zeroes its segment);
//     DecodeProblemWork finds the problem by binary search. This serves
//     partial segments (shorter extent and length), packed sequences
//     (segment_row includes the sequence's first row, stride_b and
//     lse_stride_b are 0) and key padding at either end of a selection
//     (shifted first, shorter length, longer gaps to zero).
// Both fill the same WorkItem, so the kernels' tile loops are the same code
// on both paths; only the decode at the start of a block differs. The decode
// and addressing helpers are __host__ __device__ so that a host test
// (tests/cuda/flash_work_test.cc) can check where every block writes.

#ifndef KERNELS_CUDA_FLASH_COMMON_CUH_
#define KERNELS_CUDA_FLASH_COMMON_CUH_

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/block_sparse_params.h"
#include "kernels/cuda/device_primitives.cuh"
#include "kernels/cuda/flash_attention.h"
#include "kernels/dilated_params.h"
#include "kernels/dropout_rng.h"
#include "kernels/tile_walk.h"

namespace dilated {
namespace kernels {
namespace gpu {

inline constexpr float kLog2e = 1.4426950408889634f;
inline constexpr float kLn2 = 0.6931471805599453f;

// The problem-list decomposition of one launch, in device memory; all null
// (and the counts 0) on the closed-form path.
struct ProblemIndex {
  const FlashProblem* problems;
  // count + 1 prefix counts: the launch's units (thread blocks, or rows for
  // FlashDeltaKernel) of problems [0, i) are [0, begin[i]).
  const int64_t* begin;
  int64_t count;
  int64_t total;  // begin[count], for the launch configuration.
};

// Forward launch arguments, passed by value (well under the 4 KiB limit).
struct FlashForwardArgs {
  ForwardParams params;
  // Closed form: thread blocks [block_begin[i], block_begin[i + 1]) work on
  // group i.
  int64_t block_begin[kMaxGroups + 1];
  ProblemIndex general;
  // Block-sparse calls (FlashBlockSparseForward): the active blocks in device
  // memory; row_begin is null for dense attention.
  BlockLists sparse;
};

// Backward launch arguments.
struct FlashBackwardArgs {
  BackwardParams params;
  int64_t block_begin[kMaxGroups + 1];
  ProblemIndex general;
  BlockLists sparse;  // As FlashForwardArgs::sparse.
  // rowsum(grad_out * out) of every selected row, laid out like
  // params.forward.lse: [storage batch, heads, seq_len] with stride_b
  // delta_stride_b (0 when packed) and stride_h seq_len.
  float* delta;
  int64_t delta_stride_b;
};

// Returns the batch stride of the backward pass's delta buffer.
__host__ __device__ inline int64_t DeltaStrideB(const ForwardParams& p) {
  return p.sequence.cu_seqlens != nullptr ? 0 : p.num_heads * p.seq_len;
}

// Returns the backward launch arguments of `params` with the delta buffer
// `delta` (FlashBackwardWorkspaceBytes); each launch fills block_begin and
// its problem index.
inline FlashBackwardArgs MakeFlashBackwardArgs(const BackwardParams& params,
                                               float* delta) {
  FlashBackwardArgs args;
  args.params = params;
  args.general = ProblemIndex{nullptr, nullptr, 0, 0};
  args.sparse = BlockLists{};
  args.delta = delta;
  args.delta_stride_b = DeltaStrideB(params.forward);
  return args;
}

// Returns the number of row blocks of `rows_per_block` rows that `rows`
// rows need: at least one, so that a problem without rows still gets a
// block that zeroes its segment.
__host__ __device__ inline int64_t RowBlocks(int64_t rows, int rows_per_block) {
  return rows == 0 ? 1 : (rows + rows_per_block - 1) / rows_per_block;
}

// Returns the thread blocks group `g` needs on the closed-form path: one
// per (batch, segment, head, row block).
__host__ __device__ inline int64_t GroupBlocks(const ForwardParams& p,
                                               const GroupParams& g,
                                               int rows_per_block) {
  return p.batch * (p.seq_len / g.segment_length) * g.num_heads *
         RowBlocks(g.positions, rows_per_block);
}

// Fills block_begin with the prefix counts of GroupBlocks and returns the
// total.
inline int64_t FillBlockBegin(const ForwardParams& p, int rows_per_block,
                              int64_t* block_begin) {
  int64_t total = 0;
  for (int i = 0; i < p.num_groups; ++i) {
    block_begin[i] = total;
    total += GroupBlocks(p, p.groups[i], rows_per_block);
  }
  block_begin[p.num_groups] = total;
  return total;
}

// Returns the thread blocks of a launch of `rows_per_block` rows per block:
// the index's total on the problem-list path (block_begin is then unused and
// zeroed), else the closed form's, filling block_begin.
inline int64_t LaunchBlocks(const ForwardParams& p, const ProblemIndex& general,
                            int rows_per_block, int64_t* block_begin) {
  if (general.problems == nullptr) {
    return FillBlockBegin(p, rows_per_block, block_begin);
  }
  std::fill(block_begin, block_begin + kMaxGroups + 1, 0);
  return general.total;
}

// Launches `blocks` thread blocks of `kernel` (shape Tile: kThreads threads,
// kSmemBytes of dynamic shared memory) with `args` on `stream`.
template <class Tile, class Args>
cudaError_t LaunchWithSmem(void (*kernel)(Args), const Args& args,
                           int64_t blocks, cudaStream_t stream) {
  if (blocks == 0) return cudaSuccess;
  if (blocks > 0x7fffffff) return cudaErrorInvalidConfiguration;
  const cudaError_t error =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                           static_cast<int>(Tile::kSmemBytes));
  if (error != cudaSuccess) return error;
  kernel<<<static_cast<unsigned>(blocks), Tile::kThreads, Tile::kSmemBytes,
           stream>>>(args);
  return cudaGetLastError();
}

// The arguments of a forward launch over every group of `p` in blocks of
// `rows_per_block` rows, and in *blocks the number of blocks; `general` is
// the launch's problem list (ProblemTable::AddBlocks(rows_per_block)), or
// null for the closed form; `sparse` the device lists of a block-sparse
// call, or null.
inline FlashForwardArgs MakeForwardArgs(const ForwardParams& p,
                                        const ProblemIndex& general,
                                        const BlockLists& sparse,
                                        int rows_per_block, int64_t* blocks) {
  FlashForwardArgs args;
  args.params = p;
  args.general = general;
  args.sparse = sparse;
  *blocks = LaunchBlocks(p, general, rows_per_block, args.block_begin);
  return args;
}

// Launches the forward kernel `kernel` of shape Tile (kBlockM rows per
// block) over every group of `p` on `stream` (arguments as MakeForwardArgs).
template <class Tile>
cudaError_t LaunchForwardKernel(void (*kernel)(FlashForwardArgs),
                                const ForwardParams& p, cudaStream_t stream,
                                const ProblemIndex& general,
                                const BlockLists& sparse) {
  int64_t blocks = 0;
  const FlashForwardArgs args =
      MakeForwardArgs(p, general, sparse, Tile::kBlockM, &blocks);
  return LaunchWithSmem<Tile>(kernel, args, blocks, stream);
}

// Host staging of the problem table of one call: the problems once, then
// one prefix-count array per launch, uploaded into the caller's scratch in
// one copy. With null `problems` (the closed form) every launch gets the
// null ProblemIndex and Upload does nothing.
//
//   ProblemTable table(problems, params);
//   const ProblemIndex query = table.AddBlocks(QueryTile::kBlockM);
//   const ProblemIndex key_value = table.AddBlocks(KeyValueTile::kBlockN);
//   cudaError_t error = table.Upload(stream);  // then launch both
class ProblemTable {
 public:
  // The most launches one call adds (the mma.sync backward: delta, dK/dV,
  // dK alone, dQ).
  static constexpr int kMaxLaunches = 4;

  // Returns the bytes of the device table of `count` problems.
  static size_t Bytes(int64_t count) {
    return static_cast<size_t>(count) * sizeof(FlashProblem) +
           static_cast<size_t>(kMaxLaunches) * (count + 1) * sizeof(int64_t);
  }

  ProblemTable(const FlashProblems* problems, const ForwardParams& p)
      : problems_(problems), params_(p) {
    if (problems_ == nullptr) return;
    const size_t bytes = problems_->count * sizeof(FlashProblem);
    staging_.resize(bytes);
    std::memcpy(staging_.data(), problems_->problems, bytes);
  }

  // Adds a launch of one thread block per (problem, head, block of
  // `rows_per_block` rows), at least one per (problem, head).
  ProblemIndex AddBlocks(int rows_per_block) { return Add(rows_per_block); }

  // Adds a launch of one unit per (problem, head, row) (FlashDeltaKernel).
  ProblemIndex AddRows() { return Add(0); }

  // Returns the bytes Upload copies (the table as the device will hold it).
  const std::vector<char>& staged() const { return staging_; }

  // Copies the table to the device on `stream`. REQUIRES: after every Add
  // and before the launches.
  cudaError_t Upload(cudaStream_t stream) const {
    if (problems_ == nullptr || staging_.empty()) return cudaSuccess;
    // More launches than kMaxLaunches would overrun the caller's scratch.
    if (staging_.size() > Bytes(problems_->count)) return cudaErrorInvalidValue;
    return cudaMemcpyAsync(problems_->table, staging_.data(), staging_.size(),
                           cudaMemcpyHostToDevice, stream);
  }

 private:
  ProblemIndex Add(int rows_per_block) {
    if (problems_ == nullptr) return ProblemIndex{nullptr, nullptr, 0, 0};
    const int64_t count = problems_->count;
    const size_t offset = staging_.size();
    staging_.resize(offset + (count + 1) * sizeof(int64_t));
    int64_t total = 0;
    for (int64_t i = 0; i <= count; ++i) {
      std::memcpy(staging_.data() + offset + i * sizeof(int64_t), &total,
                  sizeof(int64_t));
      if (i == count) break;
      const FlashProblem& problem = problems_->problems[i];
      const int64_t heads = params_.groups[problem.group].num_heads;
      total += heads * (rows_per_block == 0
                            ? problem.length
                            : RowBlocks(problem.length, rows_per_block));
    }
    const char* device = static_cast<const char*>(problems_->table);
    return ProblemIndex{reinterpret_cast<const FlashProblem*>(device),
                        reinterpret_cast<const int64_t*>(device + offset),
                        count, total};
  }

  const FlashProblems* problems_;
  const ForwardParams& params_;
  std::vector<char> staging_;
};

// One problem on one head and one block of its rows. Positions (first,
// extent, the rows) count from the segment's first position.
struct WorkItem {
  int group;
  int64_t batch;        // Multiplies stride_b.
  int64_t segment_row;  // Row of the segment's first position.
  int64_t head;         // Absolute head index.
  int first;            // Position of row 0.
  int step;             // Positions between rows j and j + 1.
  int length;           // Rows of the problem.
  int extent;           // Positions of the segment.
  int block;            // Row block within the problem.
  int num_blocks;
  // Position of the segment's first position in its sequence (batch entry
  // or packed sequence `batch`).
  int64_t segment_position;

  // Returns the position in its sequence of problem row j.
  __host__ __device__ __forceinline__ int64_t Position(int j) const {
    return segment_position + first + static_cast<int64_t>(j) * step;
  }
};

// Returns the dropout factor (kernels/dropout_rng.h) of problem rows `query`
// and `key` of work item `w`.
__device__ __forceinline__ float FlashDropoutFactor(const ForwardParams& p,
                                                    const WorkItem& w,
                                                    int query, int key) {
  return DropoutFactor(p.dropout, w.batch, p.num_heads, w.head,
                       w.Position(query), w.Position(key));
}

// Returns the work item of segment `segment` of batch entry `batch` of group
// `gi` on the closed-form path (head and block left unset).
__host__ __device__ __forceinline__ WorkItem SegmentWorkItem(
    const ForwardParams& p, int gi, int64_t batch, int64_t segment) {
  const GroupParams& g = p.groups[gi];
  WorkItem w;
  w.group = gi;
  w.batch = batch;
  w.segment_row = segment * g.segment_length;
  w.segment_position = w.segment_row;
  w.first = static_cast<int>(g.offset);
  w.step = static_cast<int>(g.dilation_rate);
  w.length = static_cast<int>(g.positions);
  w.extent = static_cast<int>(g.segment_length);
  return w;
}

// Returns the work item of `problem` (head and block left unset).
__host__ __device__ __forceinline__ WorkItem
ProblemWorkItem(const FlashProblem& problem) {
  WorkItem w;
  w.group = problem.group;
  w.batch = problem.batch;
  w.segment_row = problem.segment_row;
  w.segment_position = problem.segment_position;
  w.first = problem.first;
  w.step = problem.step;
  w.length = problem.length;
  w.extent = problem.extent;
  return w;
}

// Closed form: decodes thread block `index`. Row blocks vary fastest, so
// consecutive blocks share the keys and values of one sequence in L2; with
// `heavy_last_first`, the last row block (the most work under a causal mask)
// comes first.
__host__ __device__ __forceinline__ WorkItem
DecodeWork(const int64_t* block_begin, const ForwardParams& p, int64_t index,
           int rows_per_block, bool heavy_last_first) {
  int gi = 0;
  while (gi + 1 < p.num_groups && index >= block_begin[gi + 1]) ++gi;
  const GroupParams& g = p.groups[gi];
  int64_t rest = index - block_begin[gi];
  const int num_blocks =
      static_cast<int>(RowBlocks(g.positions, rows_per_block));
  const int block = static_cast<int>(rest % num_blocks);
  rest /= num_blocks;
  const int64_t head = g.head_begin + rest % g.num_heads;
  rest /= g.num_heads;
  const int64_t segments = p.seq_len / g.segment_length;
  WorkItem w = SegmentWorkItem(p, gi, rest / segments, rest % segments);
  w.head = head;
  w.num_blocks = num_blocks;
  w.block = heavy_last_first ? num_blocks - 1 - block : block;
  return w;
}

// Returns the problem whose units hold `unit`: the largest i with
// begin[i] <= unit (problems without units are skipped).
// REQUIRES: 0 <= unit < index.begin[index.count].
__host__ __device__ __forceinline__ int64_t
FindProblem(const ProblemIndex& index, int64_t unit) {
  int64_t lo = 0;
  int64_t hi = index.count;  // begin[lo] <= unit < begin[hi]
  while (hi - lo > 1) {
    const int64_t mid = (lo + hi) / 2;
    if (index.begin[mid] <= unit) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return lo;
}

// Problem list: decodes thread block `index` as DecodeWork does (row blocks
// fastest, then heads).
__host__ __device__ __forceinline__ WorkItem
DecodeProblemWork(const ProblemIndex& general, const ForwardParams& p,
                  int64_t index, int rows_per_block, bool heavy_last_first) {
  const int64_t pi = FindProblem(general, index);
  WorkItem w = ProblemWorkItem(general.problems[pi]);
  const int64_t rest = index - general.begin[pi];
  w.num_blocks = static_cast<int>(RowBlocks(w.length, rows_per_block));
  const int block = static_cast<int>(rest % w.num_blocks);
  w.block = heavy_last_first ? w.num_blocks - 1 - block : block;
  w.head = p.groups[w.group].head_begin + rest / w.num_blocks;
  return w;
}

// Decodes thread block `index` on the launch's path.
__host__ __device__ __forceinline__ WorkItem
DecodeBlock(const int64_t* block_begin, const ProblemIndex& general,
            const ForwardParams& p, int64_t index, int rows_per_block,
            bool heavy_last_first) {
  return general.problems == nullptr
             ? DecodeWork(block_begin, p, index, rows_per_block,
                          heavy_last_first)
             : DecodeProblemWork(general, p, index, rows_per_block,
                                 heavy_last_first);
}

// Returns the element at the segment's first position for the work item's
// batch entry and head.
template <typename T>
__host__ __device__ __forceinline__ T* SegmentStart(const TensorParams& t,
                                                    const WorkItem& w) {
  return static_cast<T*>(t.data) + w.batch * t.stride_b +
         w.segment_row * t.stride_n + w.head * t.stride_h;
}

// Returns the element of row 0 (position first).
template <typename T>
__host__ __device__ __forceinline__ T* SelectedRow0(const TensorParams& t,
                                                    const WorkItem& w) {
  return SegmentStart<T>(t, w) + w.first * t.stride_n;
}

// Returns the distance in elements between rows j and j + 1.
__host__ __device__ __forceinline__ int64_t RowStep(const TensorParams& t,
                                                    const WorkItem& w) {
  return w.step * t.stride_n;
}

// Returns the entry of the segment's first position in a [batch, heads,
// rows] float array (the lse, the delta buffer) with the given strides.
__host__ __device__ __forceinline__ float* SegmentStart(float* base,
                                                        int64_t stride_b,
                                                        int64_t stride_h,
                                                        const WorkItem& w) {
  return base + w.batch * stride_b + w.head * stride_h + w.segment_row;
}

// Starts cp.async copies of selected rows [first, first + kRows) into a
// shared tile of kRows x (kHeadDim + 8) elements (the 8-element pad keeps
// ldmatrix free of bank conflicts). Rows >= limit and 16-byte chunks >=
// `chunks` are zero-filled. All kThreads threads of the block must call it.
template <int kRows, int kHeadDim, int kThreads, typename T>
__device__ __forceinline__ void LoadRows(T* smem, const T* rows, int64_t step,
                                         int first, int limit, int chunks,
                                         int tid) {
  constexpr int kChunks = kHeadDim / 8;
  constexpr int kStride = kHeadDim + 8;
  static_assert(kThreads % kChunks == 0, "a thread keeps one column chunk");
  constexpr int kRowsPerPass = kThreads / kChunks;
  static_assert(kRows % kRowsPerPass == 0, "uneven tile copy");
  const int c = tid % kChunks;
  const int r0 = tid / kChunks;
  // One running source pointer (advanced by a whole pass of rows) keeps the
  // compiler from holding a 64-bit address per pass in registers.
  const T* src = rows + (first + r0) * step + c * 8;
  const int64_t pass_step = kRowsPerPass * step;
  const uint32_t dst = SharedAddress(smem + r0 * kStride + c * 8);
  const bool column_valid = c < chunks;
#pragma unroll
  for (int pass = 0; pass < kRows / kRowsPerPass; ++pass) {
    const bool valid = column_valid && first + r0 + pass * kRowsPerPass < limit;
    CpAsync16(dst + pass * kRowsPerPass * kStride * sizeof(T),
              valid ? src : rows, valid);
    src += pass_step;
  }
}

// The positions of a work item's segment that its row block [j_begin,
// j_end) zeroes, in three runs: the lead [0, first) (the whole segment when
// the problem has no rows) for the block of row 0, the step - 1 positions
// after each row of the block but the problem's last, and the tail after the
// last row up to the segment's end for the block that holds it (longer than
// step - 1 when padding was trimmed off the selection's end). Over the
// blocks of a problem, every position that is not a row is listed once.
struct UnselectedRuns {
  int lead;
  int first;       // Position of row 0.
  int step;        // Positions between rows.
  int j_begin;     // First row of the block.
  int gap_rows;    // Positions in the gaps after rows [j_begin, ..).
  int tail_start;  // Position after the last row.
  int count;       // lead + gap_rows + the tail.

  __host__ __device__ __forceinline__ UnselectedRuns(const WorkItem& w,
                                                     int j_begin, int j_end)
      : first(w.first), step(w.step), j_begin(j_begin) {
    const bool holds_last = w.length > 0 && j_end == w.length;
    lead = w.length == 0 ? w.extent : (j_begin == 0 ? w.first : 0);
    const int full_gaps = (holds_last ? j_end - 1 : j_end) - j_begin;
    gap_rows = full_gaps * (w.step - 1);
    tail_start = w.first + (w.length - 1) * w.step + 1;
    const int tail = holds_last ? w.extent - tail_start : 0;
    count = lead + gap_rows + tail;
  }

  // Returns the position of the k-th listed position, k < count.
  __host__ __device__ __forceinline__ int Position(int k) const {
    if (k < lead) return k;
    k -= lead;
    if (k < gap_rows) {
      const int gaps = step - 1;  // > 0 whenever gap_rows > 0
      return first + (j_begin + k / gaps) * step + 1 + k % gaps;
    }
    return tail_start + (k - gap_rows);
  }
};

// Writes zeros to the positions of the work item's segment that row block
// [j_begin, j_end) is responsible for (UnselectedRuns) and, when `lse` (the
// segment's first entry of a [.., rows] float array) is not null, -inf
// there. `segment_start` is SegmentStart of the tensor. Every thread of the
// block calls it.
template <typename T>
__device__ void ZeroUnselectedRows(T* segment_start, int64_t stride_n,
                                   const WorkItem& w, int j_begin, int j_end,
                                   int chunks, float* lse, int tid,
                                   int num_threads) {
  const UnselectedRuns runs(w, j_begin, j_end);
  if (runs.count == 0) return;
  const uint4 zero = make_uint4(0, 0, 0, 0);
  const int64_t items = static_cast<int64_t>(runs.count) * chunks;
  for (int64_t i = tid; i < items; i += num_threads) {
    const int pos = runs.Position(static_cast<int>(i / chunks));
    const int c = static_cast<int>(i % chunks);
    *reinterpret_cast<uint4*>(segment_start + pos * stride_n + c * 8) = zero;
  }
  if (lse == nullptr) return;
  const float minus_inf = -__int_as_float(0x7f800000);
  for (int k = tid; k < runs.count; k += num_threads) {
    lse[runs.Position(k)] = minus_inf;
  }
}

// The key tiles of kTile keys that the query rows of work item `w` from
// problem row `first_row` visit, below `key_limit`: all of them (dense) or
// those of the active blocks (`sparse` not null; a block-sparse call has one
// problem per (batch entry, head) whose rows are the sequence's positions).
template <int kTile>
__device__ __forceinline__ TileWalk KeyTilesOf(const BlockLists& sparse,
                                               const WorkItem& w, int first_row,
                                               int key_limit) {
  if (sparse.row_begin == nullptr) {
    return ContiguousTiles(0, (key_limit + kTile - 1) / kTile);
  }
  return SparseKeyTiles(sparse, w.head, kTile, first_row, key_limit);
}

// The query tiles of kTile rows that the key rows of work item `w` from
// problem row `first_key` visit: under a causal mask from the tile holding
// `first_key` on, of all `num_rows` rows (dense) or of the query blocks that
// attend to the key block (sparse, as KeyTilesOf).
template <int kTile>
__device__ __forceinline__ TileWalk QueryTilesOf(const BlockLists& sparse,
                                                 const WorkItem& w,
                                                 int first_key, int num_rows,
                                                 bool causal) {
  if (sparse.row_begin == nullptr) {
    return ContiguousTiles(causal ? first_key / kTile : 0,
                           (num_rows + kTile - 1) / kTile);
  }
  return SparseQueryTiles(sparse, w.head, kTile, first_key, causal);
}

// Waits for the prologue's asynchronous copies when a thread block's walk
// visits no tile (a block-sparse row or column without active blocks): the
// tile loop, which waits for them, never ran, and the epilogue stages its
// results through the same shared memory. Every thread of the block calls
// it (the walk is the block's, so the barrier is uniform).
__device__ __forceinline__ void DrainEmptyWalk(const TileWalk& walk) {
  if (walk.count == 0) {
    CpAsyncWait<0>();
    __syncthreads();
  }
}

}  // namespace gpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CUDA_FLASH_COMMON_CUH_
