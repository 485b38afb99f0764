#include "distributed/shard_runner.h"

#include <initializer_list>
#include <limits>
#include <utility>
#include <vector>

#include "distributed/shard_plan.h"
#include "factory/status_macros.h"

namespace dilated {
namespace distributed {
namespace {

using kernels::BackwardParams;
using kernels::DataType;
using kernels::ForwardParams;
using kernels::GroupParams;
using kernels::TensorParams;

constexpr float kNegativeInfinity = -std::numeric_limits<float>::infinity();
constexpr LseView kNoLse{nullptr, 0, 0, 0};

// K and V rows, dense (row_ops.h DenseRows).
struct KeyRows {
  TensorParams k;
  TensorParams v;
};

class ShardRunner {
 public:
  ShardRunner(const ForwardParams& params, SequenceParallelAlgorithm algorithm,
              ShardPlacement placement, Communicator& comm, LocalKernels& local)
      : p_(params),
        algorithm_(algorithm),
        placement_(placement),
        comm_(comm),
        local_(local),
        elem_(params.dtype == DataType::kFloat32 ? 4 : 2),
        buffers_{local.context().device, local.context().stream} {}

  absl::Status Forward() {
    for (const GroupPlan& plan : Plan()) {
      const GroupParams& g = p_.groups[plan.group];
      for (const RowRange& range : plan.local) {
        DA_RETURN_IF_ERROR(local_.Forward(LocalParams(g, range)));
      }
      for (const SharedSegment& segment : plan.shared) {
        DA_RETURN_IF_ERROR(ForwardShared(g, segment));
      }
    }
    return absl::OkStatus();
  }

  absl::Status Backward(const BackwardParams& params) {
    for (const GroupPlan& plan : Plan()) {
      const GroupParams& g = p_.groups[plan.group];
      for (const RowRange& range : plan.local) {
        BackwardParams local;
        local.forward = LocalParams(g, range);
        local.grad_out = View(params.grad_out, range.begin, g, 1);
        local.grad_q = View(params.grad_q, range.begin, g, 1);
        local.grad_k = View(params.grad_k, range.begin, g, 1);
        local.grad_v = View(params.grad_v, range.begin, g, 1);
        DA_RETURN_IF_ERROR(local_.Backward(local));
      }
      for (const SharedSegment& segment : plan.shared) {
        DA_RETURN_IF_ERROR(BackwardShared(params, g, segment));
      }
    }
    return absl::OkStatus();
  }

 private:
  std::vector<GroupPlan> Plan() const {
    return PlanShard(p_, placement_, p_.seq_len, comm_.rank(), comm_.size());
  }

  // ---- Views and sizes ---------------------------------------------------

  // Returns a view of `t` from shard row `row` and the group's first head,
  // rows `step` apart.
  TensorParams View(const TensorParams& t, int64_t row, const GroupParams& g,
                    int64_t step) const {
    return TensorParams{
        static_cast<char*>(t.data) +
            (row * t.stride_n + g.head_begin * t.stride_h) * elem_,
        t.stride_b, step * t.stride_n, t.stride_h};
  }

  // Returns the view of a run's selected rows in the shard's tensor `t`.
  TensorParams RunView(const TensorParams& t, const GroupParams& g,
                       const Run& run) const {
    return View(t, run.first_row, g, g.dilation_rate);
  }

  // Returns the shard's lse of a run (or of `rows` from shard row `row`,
  // `step` apart); no data without an lse.
  LseView LseOf(int64_t row, const GroupParams& g, int64_t step) const {
    if (p_.lse == nullptr) return kNoLse;
    return LseView{p_.lse + g.head_begin * p_.lse_stride_h + row,
                   p_.lse_stride_b, p_.lse_stride_h, step};
  }
  LseView RunLse(const GroupParams& g, const Run& run) const {
    return LseOf(run.first_row, g, g.dilation_rate);
  }

  // Returns `dense` (DenseRows) from its row `row` on.
  TensorParams RowsAt(const TensorParams& dense, int64_t row) const {
    return TensorParams{
        static_cast<char*>(dense.data) + row * dense.stride_n * elem_,
        dense.stride_b, dense.stride_n, dense.stride_h};
  }

  // Returns a float32 accumulator (gradients: no lse) from its row `row` on.
  static Accumulator AccumulatorAt(const Accumulator& acc, const RowsShape& s,
                                   int64_t row) {
    return Accumulator{acc.data + row * s.batch * s.heads * s.head_dim,
                       nullptr};
  }

  RowsShape Shape(const GroupParams& g, int64_t rows) const {
    return RowsShape{p_.batch, rows, g.num_heads, p_.head_dim};
  }

  size_t RowBytes(const RowsShape& s) const {
    return static_cast<size_t>(s.rows * s.batch * s.heads * s.head_dim) * elem_;
  }

  static int64_t Values(const RowsShape& s) {
    return s.rows * s.batch * s.heads * s.head_dim;
  }

  static size_t FloatBytes(int64_t count) {
    return static_cast<size_t>(count) * sizeof(float);
  }

  // ---- Parameters of the local kernel calls ------------------------------

  // The whole segments of group `g` in shard rows `range`: one group, its
  // heads renumbered from 0, the call's scale.
  ForwardParams LocalParams(const GroupParams& g, const RowRange& range) const {
    ForwardParams local = p_;
    local.q = View(p_.q, range.begin, g, 1);
    local.k = View(p_.k, range.begin, g, 1);
    local.v = View(p_.v, range.begin, g, 1);
    local.out = View(p_.out, range.begin, g, 1);
    local.lse = p_.lse == nullptr
                    ? nullptr
                    : p_.lse + g.head_begin * p_.lse_stride_h + range.begin;
    local.seq_len = range.end - range.begin;
    local.key_seq_len = local.seq_len;
    local.sequence.max_seq_len = local.seq_len;
    local.num_heads = g.num_heads;
    local.num_groups = 1;
    local.groups[0] = g;
    local.groups[0].head_begin = 0;
    return local;
  }

  // `rows` queries attending `rows` keys (one dense square problem), lse
  // into a dense [batch, heads, rows] array.
  ForwardParams BlockParams(const TensorParams& q, const KeyRows& keys,
                            const TensorParams& out, float* lse, int64_t rows,
                            int64_t heads, bool causal,
                            float output_scale) const {
    ForwardParams block = p_;
    block.q = q;
    block.k = keys.k;
    block.v = keys.v;
    block.out = out;
    block.lse = lse;
    block.lse_stride_b = heads * rows;
    block.lse_stride_h = rows;
    block.seq_len = rows;
    block.key_seq_len = rows;
    block.key_position_offset = 0;
    block.sequence.max_seq_len = rows;
    block.num_heads = heads;
    block.is_causal = causal;
    block.output_scale = output_scale;
    block.num_groups = 1;
    block.groups[0] = GroupParams{0, heads, rows, 1, 0, rows};
    return block;
  }

  // ---- Who attends what --------------------------------------------------

  // Returns whether run `q` attends the keys of run `k`.
  bool Attends(const Run& q, const Run& k) const {
    return !p_.is_causal || k.begin <= q.begin;
  }

  // Returns the end of the keys `rank`'s runs attend: [0, key_end).
  int64_t KeyEnd(const SharedSegment& segment, int rank) const {
    if (!p_.is_causal) return segment.length;
    int64_t end = 0;
    for (const Run& run : segment.runs) {
      if (run.rank == rank) end = std::max(end, run.end);
    }
    return end;
  }

  // Returns the runs of `rank`, in row order.
  static std::vector<const Run*> RunsOf(const SharedSegment& segment,
                                        int rank) {
    std::vector<const Run*> runs;
    for (const Run& run : segment.runs) {
      if (run.rank == rank) runs.push_back(&run);
    }
    return runs;
  }

  // The segment's ranks in ring order and this rank's place among them.
  struct Ring {
    std::vector<int> ranks;
    int self;

    int count() const { return static_cast<int>(ranks.size()); }
    int next() const { return ranks[(self + 1) % count()]; }
    int prev() const { return ranks[(self + count() - 1) % count()]; }
    // The rank whose block this rank holds at `step`.
    int source(int step) const {
      return ranks[(self - step + count()) % count()];
    }
  };

  Ring RingOf(const SharedSegment& segment) const {
    Ring ring{segment.Holders(), 0};
    ring.self = static_cast<int>(
        std::find(ring.ranks.begin(), ring.ranks.end(), comm_.rank()) -
        ring.ranks.begin());
    return ring;
  }

  // Starts passing `current` (K and V, `bytes` each) to the next rank and
  // receiving the previous rank's into `incoming`; nothing after the last
  // step.
  absl::StatusOr<PendingExchange> PassKeys(const Ring& ring, int step,
                                           const KeyRows& current,
                                           const KeyRows& incoming,
                                           size_t bytes) {
    if (step + 1 >= ring.count()) return PendingExchange();
    const Transfer transfers[] = {
        Transfer::Send(ring.next(), current.k.data, bytes),
        Transfer::Send(ring.next(), current.v.data, bytes),
        Transfer::Receive(ring.prev(), incoming.k.data, bytes),
        Transfer::Receive(ring.prev(), incoming.v.data, bytes)};
    return comm_.StartExchange(transfers, buffers_);
  }

  // Calls fn(a, mine, i, key) for this rank's run `mine` (the a-th of its
  // runs) and every run `key` (the i-th of `block`) it attends.
  template <typename Fn>
  absl::Status ForEachAttended(const SharedSegment& segment,
                               const std::vector<const Run*>& block, Fn fn) {
    for (size_t a = 0; a < segment.mine.size(); ++a) {
      const Run& mine = segment.runs[segment.mine[a]];
      for (size_t i = 0; i < block.size(); ++i) {
        if (Attends(mine, *block[i])) {
          DA_RETURN_IF_ERROR(fn(a, mine, i, *block[i]));
        }
      }
    }
    return absl::OkStatus();
  }

  // ---- Shared pieces of work ---------------------------------------------

  // Zeroes this rank's positions of `segment` in `tensors` for the group's
  // heads (and, when `lse` is set, sets their lse to -inf).
  absl::Status ZeroPortions(const GroupParams& g, const SharedSegment& segment,
                            std::initializer_list<TensorParams> tensors,
                            bool lse) {
    for (const RowRange& portion : segment.portions) {
      const RowsShape shape = Shape(g, portion.end - portion.begin);
      for (const TensorParams& t : tensors) {
        DA_RETURN_IF_ERROR(
            local_.ZeroRows(p_.dtype, shape, View(t, portion.begin, g, 1)));
      }
      if (lse && p_.lse != nullptr) {
        DA_RETURN_IF_ERROR(local_.FillLse(shape, LseOf(portion.begin, g, 1),
                                          kNegativeInfinity));
      }
    }
    return absl::OkStatus();
  }

  // Returns dense K and V buffers of `rows` rows.
  absl::StatusOr<Scratch> DenseKeys(const GroupParams& g, int64_t rows,
                                    KeyRows* keys) {
    const RowsShape shape = Shape(g, rows);
    DA_ASSIGN_OR_RETURN(Scratch scratch, local_.Allocate(2 * RowBytes(shape)));
    keys->k = DenseRows(scratch.data(), shape);
    keys->v = DenseRows(scratch.as<char>() + RowBytes(shape), shape);
    return scratch;
  }

  // Copies run `run`'s K/V rows (this rank's) to `keys` from row `row` on.
  absl::Status CopyOwnKeys(const GroupParams& g, const Run& run,
                           const KeyRows& keys, int64_t row) {
    const RowsShape shape = Shape(g, run.size());
    DA_RETURN_IF_ERROR(local_.CopyRows(p_.dtype, shape, RunView(p_.k, g, run),
                                       RowsAt(keys.k, row)));
    return local_.CopyRows(p_.dtype, shape, RunView(p_.v, g, run),
                           RowsAt(keys.v, row));
  }

  // Fills `keys` (dense, key_end rows indexed like the segment's rows) with
  // the rows [0, key_end): this rank's runs, and the others' received while
  // this rank's go to the ranks that attend them.
  absl::Status GatherKeys(const GroupParams& g, const SharedSegment& segment,
                          int64_t key_end, const KeyRows& keys) {
    for (int index : segment.mine) {
      const Run& run = segment.runs[index];
      DA_RETURN_IF_ERROR(CopyOwnKeys(g, run, keys, run.begin));
    }
    std::vector<Transfer> transfers;
    for (int peer : segment.Holders()) {
      if (peer == comm_.rank()) continue;
      const int64_t peer_key_end = KeyEnd(segment, peer);
      for (int index : segment.mine) {
        const Run& run = segment.runs[index];
        if (run.begin >= peer_key_end) continue;
        const size_t bytes = RowBytes(Shape(g, run.size()));
        transfers.push_back(
            Transfer::Send(peer, RowsAt(keys.k, run.begin).data, bytes));
        transfers.push_back(
            Transfer::Send(peer, RowsAt(keys.v, run.begin).data, bytes));
      }
      for (const Run* run : RunsOf(segment, peer)) {
        if (run->begin >= key_end) continue;
        const size_t bytes = RowBytes(Shape(g, run->size()));
        transfers.push_back(
            Transfer::Receive(peer, RowsAt(keys.k, run->begin).data, bytes));
        transfers.push_back(
            Transfer::Receive(peer, RowsAt(keys.v, run->begin).data, bytes));
      }
    }
    return comm_.Exchange(transfers, buffers_);
  }

  // Returns dense K/V buffers holding the segment's rows [0, key_end)
  // (GatherKeys).
  absl::StatusOr<Scratch> GatheredKeys(const GroupParams& g,
                                       const SharedSegment& segment,
                                       int64_t key_end, KeyRows* keys) {
    DA_ASSIGN_OR_RETURN(Scratch scratch, DenseKeys(g, key_end, keys));
    DA_RETURN_IF_ERROR(GatherKeys(g, segment, key_end, *keys));
    return scratch;
  }

  // ---- Forward -----------------------------------------------------------

  absl::Status ForwardShared(const GroupParams& g,
                             const SharedSegment& segment) {
    DA_RETURN_IF_ERROR(ZeroPortions(g, segment, {p_.out}, /*lse=*/true));
    if (segment.mine.empty()) return absl::OkStatus();
    if (!segment.EqualBlocks()) return ForwardWholeSegment(g, segment);
    if (algorithm_ == SequenceParallelAlgorithm::kRing) {
      return ForwardRing(g, segment);
    }
    const int64_t key_end = KeyEnd(segment, comm_.rank());
    KeyRows keys;
    DA_ASSIGN_OR_RETURN(Scratch key_scratch,
                        GatheredKeys(g, segment, key_end, &keys));
    const int64_t rows = segment.runs.front().size();
    DA_ASSIGN_OR_RETURN(BlockAccumulator acc, NewBlockAccumulator(g, rows));
    // One run of this rank at a time, through one accumulator.
    for (int index : segment.mine) {
      const Run& mine = segment.runs[index];
      DA_RETURN_IF_ERROR(local_.ClearAccumulator(Shape(g, rows), acc.acc));
      for (const Run& run : segment.runs) {
        if (!Attends(mine, run)) continue;
        DA_RETURN_IF_ERROR(AttendBlock(
            g, mine,
            KeyRows{RowsAt(keys.k, run.begin), RowsAt(keys.v, run.begin)},
            &run == &mine, acc));
      }
      DA_RETURN_IF_ERROR(StoreBlockResult(g, mine, acc));
    }
    return absl::OkStatus();
  }

  // A float32 accumulator of merged partial results and one piece buffer.
  struct BlockAccumulator {
    Scratch scratch;
    Accumulator acc;
    TensorParams piece;
    float* piece_lse;
  };

  absl::StatusOr<BlockAccumulator> NewBlockAccumulator(const GroupParams& g,
                                                       int64_t rows) {
    const RowsShape s = Shape(g, rows);
    const int64_t values = Values(s);
    const int64_t lse_rows = s.batch * s.heads * s.rows;
    BlockAccumulator b;
    DA_ASSIGN_OR_RETURN(
        b.scratch,
        local_.Allocate(FloatBytes(values + 2 * lse_rows) + RowBytes(s)));
    float* floats = b.scratch.as<float>();
    b.acc = Accumulator{floats, floats + values};
    b.piece_lse = floats + values + lse_rows;
    b.piece = DenseRows(floats + values + 2 * lse_rows, s);
    DA_RETURN_IF_ERROR(local_.ClearAccumulator(s, b.acc));
    return b;
  }

  // Attends run `mine`'s queries to `keys` (a run of the same size; the
  // causal diagonal when `diagonal`) and merges the result into b.acc.
  absl::Status AttendBlock(const GroupParams& g, const Run& mine,
                           const KeyRows& keys, bool diagonal,
                           BlockAccumulator& b) {
    DA_RETURN_IF_ERROR(local_.Forward(
        BlockParams(RunView(p_.q, g, mine), keys, b.piece, b.piece_lse,
                    mine.size(), g.num_heads, p_.is_causal && diagonal, 1.0f)));
    const RowsShape s = Shape(g, mine.size());
    return local_.MergeInto(p_.dtype, s, b.piece, DenseLse(b.piece_lse, s),
                            b.acc);
  }

  absl::Status StoreBlockResult(const GroupParams& g, const Run& mine,
                                const BlockAccumulator& b) {
    return local_.StoreAccumulator(p_.dtype, Shape(g, mine.size()), b.acc,
                                   p_.output_scale, RunView(p_.out, g, mine),
                                   RunLse(g, mine));
  }

  // The blocks of the segment's ranks (each its runs, in row order) travel
  // around them; each step attends the block at hand while the next one
  // arrives.
  absl::Status ForwardRing(const GroupParams& g, const SharedSegment& segment) {
    const Ring ring = RingOf(segment);
    const int64_t rows = segment.runs.front().size();
    const int64_t block_rows = rows * segment.mine.size();
    KeyRows blocks[2];
    DA_ASSIGN_OR_RETURN(Scratch first, DenseKeys(g, block_rows, &blocks[0]));
    DA_ASSIGN_OR_RETURN(Scratch second, DenseKeys(g, block_rows, &blocks[1]));
    for (size_t i = 0; i < segment.mine.size(); ++i) {
      DA_RETURN_IF_ERROR(
          CopyOwnKeys(g, segment.runs[segment.mine[i]], blocks[0], i * rows));
    }
    std::vector<BlockAccumulator> accs;
    for (size_t i = 0; i < segment.mine.size(); ++i) {
      DA_ASSIGN_OR_RETURN(BlockAccumulator acc, NewBlockAccumulator(g, rows));
      accs.push_back(std::move(acc));
    }
    const size_t bytes = RowBytes(Shape(g, block_rows));
    for (int step = 0; step < ring.count(); ++step) {
      const KeyRows& current = blocks[step % 2];
      DA_ASSIGN_OR_RETURN(
          PendingExchange pending,
          PassKeys(ring, step, current, blocks[(step + 1) % 2], bytes));
      DA_RETURN_IF_ERROR(ForEachAttended(
          segment, RunsOf(segment, ring.source(step)),
          [&](size_t a, const Run& mine, size_t i, const Run& key) {
            return AttendBlock(g, mine,
                               KeyRows{RowsAt(current.k, i * rows),
                                       RowsAt(current.v, i * rows)},
                               &key == &mine, accs[a]);
          }));
      if (pending.active()) {
        DA_RETURN_IF_ERROR(comm_.FinishExchange(std::move(pending)));
      }
    }
    for (size_t a = 0; a < segment.mine.size(); ++a) {
      DA_RETURN_IF_ERROR(
          StoreBlockResult(g, segment.runs[segment.mine[a]], accs[a]));
    }
    return absl::OkStatus();
  }

  // Uneven runs: this rank's queries sit at their rows of one dense problem
  // over the gathered keys [0, key_end); the other query rows are zero and
  // their outputs discarded.
  absl::Status ForwardWholeSegment(const GroupParams& g,
                                   const SharedSegment& segment) {
    const int64_t key_end = KeyEnd(segment, comm_.rank());
    KeyRows keys;
    DA_ASSIGN_OR_RETURN(Scratch key_scratch,
                        GatheredKeys(g, segment, key_end, &keys));
    const RowsShape all = Shape(g, key_end);
    const size_t bytes = RowBytes(all);
    const int64_t lse_rows = all.batch * all.heads * all.rows;
    DA_ASSIGN_OR_RETURN(Scratch scratch,
                        local_.Allocate(2 * bytes + FloatBytes(lse_rows)));
    const TensorParams q = DenseRows(scratch.data(), all);
    const TensorParams out = DenseRows(scratch.as<char>() + bytes, all);
    float* lse = reinterpret_cast<float*>(scratch.as<char>() + 2 * bytes);
    DA_RETURN_IF_ERROR(local_.ZeroRows(p_.dtype, all, q));
    for (int index : segment.mine) {
      const Run& run = segment.runs[index];
      DA_RETURN_IF_ERROR(local_.CopyRows(p_.dtype, Shape(g, run.size()),
                                         RunView(p_.q, g, run),
                                         RowsAt(q, run.begin)));
    }
    DA_RETURN_IF_ERROR(
        local_.Forward(BlockParams(q, keys, out, lse, key_end, g.num_heads,
                                   p_.is_causal, p_.output_scale)));
    for (int index : segment.mine) {
      const Run& run = segment.runs[index];
      const RowsShape shape = Shape(g, run.size());
      DA_RETURN_IF_ERROR(local_.CopyRows(
          p_.dtype, shape, RowsAt(out, run.begin), RunView(p_.out, g, run)));
      if (p_.lse != nullptr) {
        DA_RETURN_IF_ERROR(local_.CopyLse(
            shape, LseView{lse + run.begin, all.heads * all.rows, all.rows, 1},
            RunLse(g, run)));
      }
    }
    return absl::OkStatus();
  }

  // ---- Backward ----------------------------------------------------------

  // A run's rows in the tensors of a backward pass.
  struct RunGradients {
    TensorParams q;
    TensorParams out;
    TensorParams grad_out;
    TensorParams grad_q;
    TensorParams grad_k;
    TensorParams grad_v;
  };

  RunGradients GradientsOf(const BackwardParams& params, const GroupParams& g,
                           const Run& run) const {
    return RunGradients{RunView(p_.q, g, run),
                        RunView(p_.out, g, run),
                        RunView(params.grad_out, g, run),
                        RunView(params.grad_q, g, run),
                        RunView(params.grad_k, g, run),
                        RunView(params.grad_v, g, run)};
  }

  absl::Status BackwardShared(const BackwardParams& params,
                              const GroupParams& g,
                              const SharedSegment& segment) {
    DA_RETURN_IF_ERROR(
        ZeroPortions(g, segment, {params.grad_q, params.grad_k, params.grad_v},
                     /*lse=*/false));
    if (segment.mine.empty()) return absl::OkStatus();
    if (!segment.EqualBlocks() || !BlocksRunAlone(params, g, segment)) {
      return BackwardWholeSegment(params, g, segment);
    }
    const int64_t rows = segment.runs.front().size();
    const RowsShape s = Shape(g, rows);
    const int64_t lse_rows = s.batch * s.heads * s.rows;
    // Each of this rank's runs' lse rows, dense, as the kernels read them.
    DA_ASSIGN_OR_RETURN(
        Scratch lse_scratch,
        local_.Allocate(FloatBytes(lse_rows * segment.mine.size())));
    std::vector<float*> lse;
    for (size_t a = 0; a < segment.mine.size(); ++a) {
      lse.push_back(lse_scratch.as<float>() + a * lse_rows);
      DA_RETURN_IF_ERROR(local_.CopyLse(
          s, RunLse(g, segment.runs[segment.mine[a]]), DenseLse(lse[a], s)));
    }
    // Scratch of one block's gradients: dQ, dK, dV pieces and the dQ sum.
    DA_ASSIGN_OR_RETURN(
        Scratch piece_scratch,
        local_.Allocate(3 * RowBytes(s) +
                        FloatBytes(Values(s) * segment.mine.size())));
    char* base = piece_scratch.as<char>();
    const Pieces pieces{DenseRows(base, s), DenseRows(base + RowBytes(s), s),
                        DenseRows(base + 2 * RowBytes(s), s),
                        reinterpret_cast<float*>(base + 3 * RowBytes(s))};
    for (size_t a = 0; a < segment.mine.size(); ++a) {
      DA_RETURN_IF_ERROR(
          local_.ClearAccumulator(s, pieces.QueryGradient(s, a)));
    }
    if (algorithm_ == SequenceParallelAlgorithm::kRing) {
      DA_RETURN_IF_ERROR(BackwardRing(params, g, segment, lse, pieces));
    } else {
      DA_RETURN_IF_ERROR(BackwardGather(params, g, segment, lse, pieces));
    }
    for (size_t a = 0; a < segment.mine.size(); ++a) {
      const Run& mine = segment.runs[segment.mine[a]];
      DA_RETURN_IF_ERROR(
          local_.StoreAccumulator(p_.dtype, s, pieces.QueryGradient(s, a), 1.0f,
                                  RunView(params.grad_q, g, mine), kNoLse));
    }
    return absl::OkStatus();
  }

  // Returns whether the local backend's backward of one block (a run's
  // queries against one run's keys) reads the rows' statistics from the
  // final out and lse; a backward that recomputes them from the block's keys
  // alone (the unfused path) runs the whole segment at once instead.
  bool BlocksRunAlone(const BackwardParams& params, const GroupParams& g,
                      const SharedSegment& segment) const {
    const Run& mine = segment.runs[segment.mine.front()];
    BackwardParams block;
    block.forward =
        BlockParams(RunView(p_.q, g, mine),
                    KeyRows{RunView(p_.k, g, mine), RunView(p_.v, g, mine)},
                    RunView(p_.out, g, mine), p_.lse, mine.size(), g.num_heads,
                    p_.is_causal, p_.output_scale);
    block.grad_out = RunView(params.grad_out, g, mine);
    block.grad_q = RunView(params.grad_q, g, mine);
    block.grad_k = RunView(params.grad_k, g, mine);
    block.grad_v = RunView(params.grad_v, g, mine);
    return local_.BackwardReadsForwardLse(block);
  }

  // Per-block gradient pieces (dtype, one run) and the float32 dQ sums of
  // this rank's runs.
  struct Pieces {
    TensorParams dq;
    TensorParams dk;
    TensorParams dv;
    float* dq_sums;

    Accumulator QueryGradient(const RowsShape& s, size_t run) const {
      return Accumulator{dq_sums + run * Values(s), nullptr};
    }
  };

  // The gradients of run `mine` attending `keys` (one run): dQ added to the
  // run's sum, dK and dV added to `dk`, `dv` (float32, the key run's rows).
  absl::Status BackwardBlock(const BackwardParams& params, const GroupParams& g,
                             const Run& mine, size_t mine_index, float* lse,
                             const KeyRows& keys, bool diagonal,
                             const Pieces& pieces, const Accumulator& dk,
                             const Accumulator& dv) {
    const RowsShape s = Shape(g, mine.size());
    BackwardParams block;
    block.forward = BlockParams(
        RunView(p_.q, g, mine), keys, RunView(p_.out, g, mine), lse,
        mine.size(), g.num_heads, p_.is_causal && diagonal, p_.output_scale);
    block.grad_out = RunView(params.grad_out, g, mine);
    block.grad_q = pieces.dq;
    block.grad_k = pieces.dk;
    block.grad_v = pieces.dv;
    DA_RETURN_IF_ERROR(local_.Backward(block));
    DA_RETURN_IF_ERROR(local_.AddInto(p_.dtype, s, pieces.dq,
                                      pieces.QueryGradient(s, mine_index)));
    DA_RETURN_IF_ERROR(local_.AddInto(p_.dtype, s, pieces.dk, dk));
    return local_.AddInto(p_.dtype, s, pieces.dv, dv);
  }

  absl::Status BackwardGather(const BackwardParams& params,
                              const GroupParams& g,
                              const SharedSegment& segment,
                              const std::vector<float*>& lse,
                              const Pieces& pieces) {
    const int64_t key_end = KeyEnd(segment, comm_.rank());
    KeyRows keys;
    DA_ASSIGN_OR_RETURN(Scratch key_scratch,
                        GatheredKeys(g, segment, key_end, &keys));
    const RowsShape all = Shape(g, key_end);
    DA_ASSIGN_OR_RETURN(Scratch sums,
                        local_.Allocate(FloatBytes(2 * Values(all))));
    const Accumulator dk{sums.as<float>(), nullptr};
    const Accumulator dv{sums.as<float>() + Values(all), nullptr};
    DA_RETURN_IF_ERROR(local_.ClearAccumulator(all, dk));
    DA_RETURN_IF_ERROR(local_.ClearAccumulator(all, dv));
    std::vector<const Run*> runs;
    for (const Run& run : segment.runs) runs.push_back(&run);
    DA_RETURN_IF_ERROR(ForEachAttended(
        segment, runs, [&](size_t a, const Run& mine, size_t, const Run& key) {
          return BackwardBlock(
              params, g, mine, a, lse[a],
              KeyRows{RowsAt(keys.k, key.begin), RowsAt(keys.v, key.begin)},
              &key == &mine, pieces, AccumulatorAt(dk, all, key.begin),
              AccumulatorAt(dv, all, key.begin));
        }));
    return ReduceKeyGradients(params, g, segment, key_end, dk, dv);
  }

  // Sends the key gradients this rank computed for the other ranks' runs
  // (float32 sums `dk`, `dv` over rows [0, key_end), sent in the dtype) to
  // them, receives the ones of its own runs from every rank that attended
  // them, and stores the totals.
  absl::Status ReduceKeyGradients(const BackwardParams& params,
                                  const GroupParams& g,
                                  const SharedSegment& segment, int64_t key_end,
                                  const Accumulator& dk,
                                  const Accumulator& dv) {
    const RowsShape all = Shape(g, key_end);
    KeyRows grads;
    DA_ASSIGN_OR_RETURN(Scratch grad_scratch, DenseKeys(g, key_end, &grads));
    DA_RETURN_IF_ERROR(
        local_.StoreAccumulator(p_.dtype, all, dk, 1.0f, grads.k, kNoLse));
    DA_RETURN_IF_ERROR(
        local_.StoreAccumulator(p_.dtype, all, dv, 1.0f, grads.v, kNoLse));
    struct Incoming {
      int run;  // Index into segment.runs (this rank's).
      size_t offset;
    };
    std::vector<Incoming> incoming;
    size_t received_bytes = 0;
    for (int peer : segment.Holders()) {
      if (peer == comm_.rank()) continue;
      const int64_t peer_key_end = KeyEnd(segment, peer);
      for (int index : segment.mine) {
        const Run& run = segment.runs[index];
        if (run.begin >= peer_key_end) continue;
        incoming.push_back(Incoming{index, received_bytes});
        received_bytes += 2 * RowBytes(Shape(g, run.size()));
      }
    }
    DA_ASSIGN_OR_RETURN(Scratch received, local_.Allocate(received_bytes));
    std::vector<Transfer> transfers;
    size_t next_incoming = 0;
    for (int peer : segment.Holders()) {
      if (peer == comm_.rank()) continue;
      for (const Run* run : RunsOf(segment, peer)) {
        if (run->begin >= key_end) continue;
        const size_t bytes = RowBytes(Shape(g, run->size()));
        transfers.push_back(
            Transfer::Send(peer, RowsAt(grads.k, run->begin).data, bytes));
        transfers.push_back(
            Transfer::Send(peer, RowsAt(grads.v, run->begin).data, bytes));
      }
      const int64_t peer_key_end = KeyEnd(segment, peer);
      for (int index : segment.mine) {
        const Run& run = segment.runs[index];
        if (run.begin >= peer_key_end) continue;
        const size_t bytes = RowBytes(Shape(g, run.size()));
        char* slot = received.as<char>() + incoming[next_incoming++].offset;
        transfers.push_back(Transfer::Receive(peer, slot, bytes));
        transfers.push_back(Transfer::Receive(peer, slot + bytes, bytes));
      }
    }
    DA_RETURN_IF_ERROR(comm_.Exchange(transfers, buffers_));
    for (int index : segment.mine) {
      const Run& run = segment.runs[index];
      const RowsShape s = Shape(g, run.size());
      const Accumulator own_k = AccumulatorAt(dk, all, run.begin);
      const Accumulator own_v = AccumulatorAt(dv, all, run.begin);
      for (const Incoming& in : incoming) {
        if (in.run != index) continue;
        char* slot = received.as<char>() + in.offset;
        DA_RETURN_IF_ERROR(
            local_.AddInto(p_.dtype, s, DenseRows(slot, s), own_k));
        DA_RETURN_IF_ERROR(local_.AddInto(
            p_.dtype, s, DenseRows(slot + RowBytes(s), s), own_v));
      }
      DA_RETURN_IF_ERROR(local_.StoreAccumulator(
          p_.dtype, s, own_k, 1.0f, RunView(params.grad_k, g, run), kNoLse));
      DA_RETURN_IF_ERROR(local_.StoreAccumulator(
          p_.dtype, s, own_v, 1.0f, RunView(params.grad_v, g, run), kNoLse));
    }
    return absl::OkStatus();
  }

  // The blocks travel around the segment's ranks with float32 key
  // gradients that every rank adds to; after the last step each block's
  // gradients take one more hop, to their owner.
  absl::Status BackwardRing(const BackwardParams& params, const GroupParams& g,
                            const SharedSegment& segment,
                            const std::vector<float*>& lse,
                            const Pieces& pieces) {
    const Ring ring = RingOf(segment);
    const int count = ring.count();
    const int64_t rows = segment.runs.front().size();
    const RowsShape s = Shape(g, rows);
    const RowsShape block = Shape(g, rows * segment.mine.size());
    const size_t bytes = RowBytes(block);
    const size_t grad_bytes = FloatBytes(Values(block));
    // Per slot: K, V (dtype) and dK, dV (float32).
    struct Slot {
      KeyRows keys;
      Accumulator dk;
      Accumulator dv;
    };
    const size_t slot_bytes = 2 * bytes + 2 * grad_bytes;
    DA_ASSIGN_OR_RETURN(Scratch scratch, local_.Allocate(2 * slot_bytes));
    Slot slots[2];
    for (int i = 0; i < 2; ++i) {
      char* slot = scratch.as<char>() + i * slot_bytes;
      slots[i].keys =
          KeyRows{DenseRows(slot, block), DenseRows(slot + bytes, block)};
      slots[i].dk =
          Accumulator{reinterpret_cast<float*>(slot + 2 * bytes), nullptr};
      slots[i].dv = Accumulator{
          reinterpret_cast<float*>(slot + 2 * bytes + grad_bytes), nullptr};
    }
    for (size_t i = 0; i < segment.mine.size(); ++i) {
      DA_RETURN_IF_ERROR(CopyOwnKeys(g, segment.runs[segment.mine[i]],
                                     slots[0].keys, i * rows));
    }
    DA_RETURN_IF_ERROR(local_.ClearAccumulator(block, slots[0].dk));
    DA_RETURN_IF_ERROR(local_.ClearAccumulator(block, slots[0].dv));
    for (int step = 0; step < count; ++step) {
      Slot& current = slots[step % 2];
      Slot& incoming = slots[(step + 1) % 2];
      // K and V leave at once; their gradients follow once this rank has
      // added its part.
      DA_ASSIGN_OR_RETURN(
          PendingExchange pending,
          PassKeys(ring, step, current.keys, incoming.keys, bytes));
      DA_RETURN_IF_ERROR(ForEachAttended(
          segment, RunsOf(segment, ring.source(step)),
          [&](size_t a, const Run& mine, size_t i, const Run& key) {
            return BackwardBlock(params, g, mine, a, lse[a],
                                 KeyRows{RowsAt(current.keys.k, i * rows),
                                         RowsAt(current.keys.v, i * rows)},
                                 &key == &mine, pieces,
                                 AccumulatorAt(current.dk, s, i * rows),
                                 AccumulatorAt(current.dv, s, i * rows));
          }));
      if (pending.active()) {
        DA_RETURN_IF_ERROR(comm_.FinishExchange(std::move(pending)));
      }
      if (count > 1) {
        // After the last step the gradients go to the block's owner, which
        // is the next rank.
        const Transfer transfers[] = {
            Transfer::Send(ring.next(), current.dk.data, grad_bytes),
            Transfer::Send(ring.next(), current.dv.data, grad_bytes),
            Transfer::Receive(ring.prev(), incoming.dk.data, grad_bytes),
            Transfer::Receive(ring.prev(), incoming.dv.data, grad_bytes)};
        DA_RETURN_IF_ERROR(comm_.Exchange(transfers, buffers_));
      }
    }
    // After `count` hops of the gradients each rank holds its own block's.
    const Slot& own = slots[count > 1 ? count % 2 : 0];
    for (size_t a = 0; a < segment.mine.size(); ++a) {
      const Run& mine = segment.runs[segment.mine[a]];
      DA_RETURN_IF_ERROR(local_.StoreAccumulator(
          p_.dtype, s, AccumulatorAt(own.dk, s, a * rows), 1.0f,
          RunView(params.grad_k, g, mine), kNoLse));
      DA_RETURN_IF_ERROR(local_.StoreAccumulator(
          p_.dtype, s, AccumulatorAt(own.dv, s, a * rows), 1.0f,
          RunView(params.grad_v, g, mine), kNoLse));
    }
    return absl::OkStatus();
  }

  // Uneven runs: one dense backward over the gathered keys with this rank's
  // rows in place and the others zero (their dO is zero, so they add
  // nothing to dK or dV).
  absl::Status BackwardWholeSegment(const BackwardParams& params,
                                    const GroupParams& g,
                                    const SharedSegment& segment) {
    const int64_t key_end = KeyEnd(segment, comm_.rank());
    KeyRows keys;
    DA_ASSIGN_OR_RETURN(Scratch key_scratch,
                        GatheredKeys(g, segment, key_end, &keys));
    const RowsShape all = Shape(g, key_end);
    const size_t bytes = RowBytes(all);
    const int64_t lse_rows = all.batch * all.heads * all.rows;
    DA_ASSIGN_OR_RETURN(
        Scratch scratch,
        local_.Allocate(6 * bytes + FloatBytes(lse_rows + 2 * Values(all))));
    char* base = scratch.as<char>();
    const TensorParams q = DenseRows(base, all);
    const TensorParams out = DenseRows(base + bytes, all);
    const TensorParams grad_out = DenseRows(base + 2 * bytes, all);
    const TensorParams grad_q = DenseRows(base + 3 * bytes, all);
    const KeyRows key_grads{DenseRows(base + 4 * bytes, all),
                            DenseRows(base + 5 * bytes, all)};
    float* lse = reinterpret_cast<float*>(base + 6 * bytes);
    const Accumulator dk{lse + lse_rows, nullptr};
    const Accumulator dv{lse + lse_rows + Values(all), nullptr};
    for (const TensorParams& dense : {q, out, grad_out}) {
      DA_RETURN_IF_ERROR(local_.ZeroRows(p_.dtype, all, dense));
    }
    // Any finite lse keeps the zero rows' probabilities finite; their dO is
    // zero, so they contribute nothing.
    DA_RETURN_IF_ERROR(local_.FillLse(all, DenseLse(lse, all), 0.0f));
    for (int index : segment.mine) {
      const Run& run = segment.runs[index];
      const RowsShape shape = Shape(g, run.size());
      const RunGradients views = GradientsOf(params, g, run);
      const std::pair<TensorParams, TensorParams> copies[] = {
          {views.q, q}, {views.out, out}, {views.grad_out, grad_out}};
      for (const auto& [shard, dense] : copies) {
        DA_RETURN_IF_ERROR(
            local_.CopyRows(p_.dtype, shape, shard, RowsAt(dense, run.begin)));
      }
      DA_RETURN_IF_ERROR(local_.CopyLse(
          shape, RunLse(g, run),
          LseView{lse + run.begin, all.heads * all.rows, all.rows, 1}));
    }
    BackwardParams block;
    block.forward = BlockParams(q, keys, out, lse, key_end, g.num_heads,
                                p_.is_causal, p_.output_scale);
    block.grad_out = grad_out;
    block.grad_q = grad_q;
    block.grad_k = key_grads.k;
    block.grad_v = key_grads.v;
    DA_RETURN_IF_ERROR(local_.Backward(block));
    for (int index : segment.mine) {
      const Run& run = segment.runs[index];
      DA_RETURN_IF_ERROR(local_.CopyRows(p_.dtype, Shape(g, run.size()),
                                         RowsAt(grad_q, run.begin),
                                         RunView(params.grad_q, g, run)));
    }
    DA_RETURN_IF_ERROR(local_.ClearAccumulator(all, dk));
    DA_RETURN_IF_ERROR(local_.ClearAccumulator(all, dv));
    DA_RETURN_IF_ERROR(local_.AddInto(p_.dtype, all, key_grads.k, dk));
    DA_RETURN_IF_ERROR(local_.AddInto(p_.dtype, all, key_grads.v, dv));
    return ReduceKeyGradients(params, g, segment, key_end, dk, dv);
  }

  const ForwardParams& p_;
  SequenceParallelAlgorithm algorithm_;
  ShardPlacement placement_;
  Communicator& comm_;
  LocalKernels& local_;
  int64_t elem_;
  Buffers buffers_;
};

}  // namespace

absl::Status ShardForward(const ForwardParams& params,
                          SequenceParallelAlgorithm algorithm,
                          ShardPlacement placement, Communicator& comm,
                          LocalKernels& local) {
  // One rank holds the whole sequence, in any layout.
  if (comm.size() == 1) return local.Forward(params);
  return ShardRunner(params, algorithm, placement, comm, local).Forward();
}

absl::Status ShardBackward(const BackwardParams& params,
                           SequenceParallelAlgorithm algorithm,
                           ShardPlacement placement, Communicator& comm,
                           LocalKernels& local) {
  if (comm.size() == 1) return local.Backward(params);
  return ShardRunner(params.forward, algorithm, placement, comm, local)
      .Backward(params);
}

}  // namespace distributed
}  // namespace dilated
