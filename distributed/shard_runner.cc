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

// The K and V rows of one block (or of a gathered segment), dense.
struct KeyRows {
  TensorParams k;
  TensorParams v;
};

class ShardRunner {
 public:
  ShardRunner(const ForwardParams& params, SequenceParallelAlgorithm algorithm,
              Communicator& comm, LocalKernels& local)
      : p_(params),
        algorithm_(algorithm),
        comm_(comm),
        local_(local),
        elem_(params.dtype == DataType::kFloat32 ? 4 : 2),
        buffers_{local.context().device, local.context().stream},
        shard_begin_(comm.rank() * params.seq_len) {}

  absl::Status Forward() {
    for (const GroupPlan& plan :
         PlanShard(p_, p_.seq_len, comm_.rank(), comm_.size())) {
      const GroupParams& g = p_.groups[plan.group];
      if (plan.local_end > plan.local_begin) {
        DA_RETURN_IF_ERROR(local_.Forward(
            LocalParams(p_, g, plan.local_begin, plan.local_end)));
      }
      for (const SharedSegment& segment : plan.shared) {
        DA_RETURN_IF_ERROR(ForwardShared(g, segment));
      }
    }
    return absl::OkStatus();
  }

  absl::Status Backward(const BackwardParams& params) {
    for (const GroupPlan& plan :
         PlanShard(p_, p_.seq_len, comm_.rank(), comm_.size())) {
      const GroupParams& g = p_.groups[plan.group];
      if (plan.local_end > plan.local_begin) {
        BackwardParams local;
        local.forward = LocalParams(p_, g, plan.local_begin, plan.local_end);
        local.grad_out = View(params.grad_out, plan.local_begin, g, 1);
        local.grad_q = View(params.grad_q, plan.local_begin, g, 1);
        local.grad_k = View(params.grad_k, plan.local_begin, g, 1);
        local.grad_v = View(params.grad_v, plan.local_begin, g, 1);
        DA_RETURN_IF_ERROR(local_.Backward(local));
      }
      for (const SharedSegment& segment : plan.shared) {
        DA_RETURN_IF_ERROR(BackwardShared(params, g, segment));
      }
    }
    return absl::OkStatus();
  }

 private:
  // The rows of one group on this rank in a shared segment.
  struct Mine {
    RankRows rows;
    int64_t first_row;  // Shard row of the first selected row.
    int64_t key_end;    // Keys the rows attend: [0, key_end).
    RowsShape shape;    // [batch, rows, heads of the group, head_dim].
  };

  // Returns a view of `t` from shard row `row` and the group's first head,
  // rows `step` apart.
  TensorParams View(const TensorParams& t, int64_t row, const GroupParams& g,
                    int64_t step) const {
    return TensorParams{
        static_cast<char*>(t.data) +
            (row * t.stride_n + g.head_begin * t.stride_h) * elem_,
        t.stride_b, step * t.stride_n, t.stride_h};
  }

  LseView LseOf(const ForwardParams& p, int64_t row, const GroupParams& g,
                int64_t step) const {
    if (p.lse == nullptr) return LseView{nullptr, 0, 0, 0};
    return LseView{p.lse + g.head_begin * p.lse_stride_h + row, p.lse_stride_b,
                   p.lse_stride_h, step};
  }

  // Returns `dense` (DenseRows) from its row `row` on.
  TensorParams RowsAt(const TensorParams& dense, int64_t row) const {
    return TensorParams{static_cast<char*>(dense.data) +
                            row * dense.stride_n * elem_,
                        dense.stride_b, dense.stride_n, dense.stride_h};
  }

  size_t RowBytes(const RowsShape& s, int64_t rows) const {
    return static_cast<size_t>(rows * s.batch * s.heads * s.head_dim) * elem_;
  }

  static size_t FloatBytes(int64_t count) {
    return static_cast<size_t>(count) * sizeof(float);
  }

  // The parameters of the whole segments of group `g` in shard rows
  // [begin, end): one group, its heads renumbered from 0, the shard's scale.
  ForwardParams LocalParams(const ForwardParams& p, const GroupParams& g,
                            int64_t begin, int64_t end) const {
    ForwardParams local = p;
    local.q = View(p.q, begin, g, 1);
    local.k = View(p.k, begin, g, 1);
    local.v = View(p.v, begin, g, 1);
    local.out = View(p.out, begin, g, 1);
    local.lse = p.lse == nullptr
                    ? nullptr
                    : p.lse + g.head_begin * p.lse_stride_h + begin;
    local.seq_len = end - begin;
    local.key_seq_len = end - begin;
    local.sequence.max_seq_len = end - begin;
    local.num_heads = g.num_heads;
    local.num_groups = 1;
    local.groups[0] = g;
    local.groups[0].head_begin = 0;
    return local;
  }

  // The parameters of `rows` queries attending `rows` keys (one dense
  // square problem), lse into a dense [batch, heads, rows] array.
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

  Mine MineOf(const GroupParams& g, const SharedSegment& segment) const {
    Mine mine;
    mine.rows = segment.holders[segment.self];
    mine.first_row =
        SelectedPosition(g, segment, mine.rows.begin) - shard_begin_;
    mine.key_end = p_.is_causal ? mine.rows.end : segment.length;
    mine.shape = RowsShape{p_.batch, mine.rows.size(), g.num_heads,
                           p_.head_dim};
    return mine;
  }

  // Returns whether holder `t` attends keys of holder `u`.
  bool Attends(const RankRows& t, const RankRows& u,
               const SharedSegment& segment) const {
    const int64_t key_end = p_.is_causal ? t.end : segment.length;
    return u.begin < key_end;
  }

  // Zeroes this rank's positions of `segment` in the given tensors for the
  // group's heads (and sets their lse to -inf).
  absl::Status ZeroPortion(const GroupParams& g, const SharedSegment& segment,
                           std::initializer_list<TensorParams> tensors,
                           const ForwardParams* lse_of) {
    const RowsShape portion{p_.batch, segment.portion_end - segment.portion_begin,
                            g.num_heads, p_.head_dim};
    for (const TensorParams& t : tensors) {
      DA_RETURN_IF_ERROR(
          local_.ZeroRows(p_.dtype, portion, View(t, segment.portion_begin, g, 1)));
    }
    if (lse_of != nullptr && lse_of->lse != nullptr) {
      DA_RETURN_IF_ERROR(local_.FillLse(
          portion, LseOf(*lse_of, segment.portion_begin, g, 1),
          kNegativeInfinity));
    }
    return absl::OkStatus();
  }

  // Copies this rank's selected K/V rows of the group into rows
  // [mine.rows.begin, ...) of `keys`.
  absl::Status CopyOwnKeys(const GroupParams& g, const Mine& mine,
                           const KeyRows& keys, int64_t row) {
    DA_RETURN_IF_ERROR(local_.CopyRows(p_.dtype, mine.shape,
                                       View(p_.k, mine.first_row, g,
                                            g.dilation_rate),
                                       RowsAt(keys.k, row)));
    return local_.CopyRows(p_.dtype, mine.shape,
                           View(p_.v, mine.first_row, g, g.dilation_rate),
                           RowsAt(keys.v, row));
  }

  // Fills `keys` (dense, mine.key_end rows) with the segment's selected K/V
  // rows [0, mine.key_end): this rank's own, and the others' received while
  // this rank's go to the ranks that attend them.
  absl::Status GatherKeys(const GroupParams& g, const SharedSegment& segment,
                          const Mine& mine, const KeyRows& keys) {
    DA_RETURN_IF_ERROR(CopyOwnKeys(g, mine, keys, mine.rows.begin));
    const size_t own_bytes = RowBytes(mine.shape, mine.rows.size());
    std::vector<Transfer> transfers;
    for (const RankRows& t : segment.holders) {
      if (t.rank == comm_.rank()) continue;
      if (Attends(t, mine.rows, segment)) {
        transfers.push_back(Transfer::Send(
            t.rank, RowsAt(keys.k, mine.rows.begin).data, own_bytes));
        transfers.push_back(Transfer::Send(
            t.rank, RowsAt(keys.v, mine.rows.begin).data, own_bytes));
      }
      if (Attends(mine.rows, t, segment)) {
        const size_t bytes = RowBytes(mine.shape, t.size());
        transfers.push_back(
            Transfer::Receive(t.rank, RowsAt(keys.k, t.begin).data, bytes));
        transfers.push_back(
            Transfer::Receive(t.rank, RowsAt(keys.v, t.begin).data, bytes));
      }
    }
    return comm_.Exchange(transfers, buffers_);
  }

  absl::StatusOr<Scratch> DenseKeys(const Mine& mine, int64_t rows,
                                    KeyRows* keys) {
    const RowsShape shape{mine.shape.batch, rows, mine.shape.heads,
                          mine.shape.head_dim};
    DA_ASSIGN_OR_RETURN(Scratch scratch,
                        local_.Allocate(2 * RowBytes(shape, rows)));
    keys->k = DenseRows(scratch.data(), shape);
    keys->v = DenseRows(scratch.as<char>() + RowBytes(shape, rows), shape);
    return scratch;
  }

  // ---- Forward -----------------------------------------------------------

  absl::Status ForwardShared(const GroupParams& g,
                             const SharedSegment& segment) {
    DA_RETURN_IF_ERROR(ZeroPortion(g, segment, {p_.out}, &p_));
    if (segment.self < 0) return absl::OkStatus();
    const Mine mine = MineOf(g, segment);
    if (!segment.EqualBlocks()) return ForwardWholeSegment(g, segment, mine);
    if (algorithm_ == SequenceParallelAlgorithm::kRing) {
      return ForwardRing(g, segment, mine);
    }
    KeyRows keys;
    DA_ASSIGN_OR_RETURN(Scratch key_scratch, DenseKeys(mine, mine.key_end, &keys));
    DA_RETURN_IF_ERROR(GatherKeys(g, segment, mine, keys));
    DA_ASSIGN_OR_RETURN(BlockAccumulator acc, NewBlockAccumulator(mine));
    for (const RankRows& t : segment.holders) {
      if (!Attends(mine.rows, t, segment)) continue;
      DA_RETURN_IF_ERROR(AttendBlock(g, mine, t,
                                     KeyRows{RowsAt(keys.k, t.begin),
                                             RowsAt(keys.v, t.begin)},
                                     acc));
    }
    return StoreBlockResult(g, mine, acc);
  }

  // A float32 accumulator of merged partial results and one piece buffer.
  struct BlockAccumulator {
    Scratch scratch;
    Accumulator acc;
    TensorParams piece;
    float* piece_lse;
  };

  absl::StatusOr<BlockAccumulator> NewBlockAccumulator(const Mine& mine) {
    const RowsShape& s = mine.shape;
    const int64_t values = s.rows * s.batch * s.heads * s.head_dim;
    const int64_t rows = s.batch * s.heads * s.rows;
    BlockAccumulator b;
    DA_ASSIGN_OR_RETURN(
        b.scratch, local_.Allocate(FloatBytes(values + 2 * rows) +
                                   RowBytes(s, s.rows)));
    float* floats = b.scratch.as<float>();
    b.acc = Accumulator{floats, floats + values};
    b.piece_lse = floats + values + rows;
    b.piece = DenseRows(floats + values + 2 * rows, s);
    DA_RETURN_IF_ERROR(local_.ClearAccumulator(s, b.acc));
    return b;
  }

  // Attends this rank's queries to the block of holder t (keys: its rows)
  // and merges the result into acc.
  absl::Status AttendBlock(const GroupParams& g, const Mine& mine,
                           const RankRows& t, const KeyRows& keys,
                           BlockAccumulator& b) {
    const bool diagonal = t.rank == comm_.rank();
    DA_RETURN_IF_ERROR(local_.Forward(BlockParams(
        View(p_.q, mine.first_row, g, g.dilation_rate), keys, b.piece,
        b.piece_lse, mine.rows.size(), g.num_heads, p_.is_causal && diagonal,
        1.0f)));
    return local_.MergeInto(p_.dtype, mine.shape, b.piece,
                            DenseLse(b.piece_lse, mine.shape), b.acc);
  }

  absl::Status StoreBlockResult(const GroupParams& g, const Mine& mine,
                                const BlockAccumulator& b) {
    return local_.StoreAccumulator(
        p_.dtype, mine.shape, b.acc, p_.output_scale,
        View(p_.out, mine.first_row, g, g.dilation_rate),
        LseOf(p_, mine.first_row, g, g.dilation_rate));
  }

  absl::Status ForwardRing(const GroupParams& g, const SharedSegment& segment,
                           const Mine& mine) {
    const int count = static_cast<int>(segment.holders.size());
    const int self = segment.self;
    const int next = segment.holders[(self + 1) % count].rank;
    const int prev = segment.holders[(self + count - 1) % count].rank;
    const int64_t rows = mine.rows.size();
    KeyRows blocks[2];
    DA_ASSIGN_OR_RETURN(Scratch first, DenseKeys(mine, rows, &blocks[0]));
    DA_ASSIGN_OR_RETURN(Scratch second, DenseKeys(mine, rows, &blocks[1]));
    DA_RETURN_IF_ERROR(CopyOwnKeys(g, mine, blocks[0], 0));
    DA_ASSIGN_OR_RETURN(BlockAccumulator acc, NewBlockAccumulator(mine));
    const size_t bytes = RowBytes(mine.shape, rows);
    for (int step = 0; step < count; ++step) {
      const KeyRows& current = blocks[step % 2];
      const KeyRows& incoming = blocks[(step + 1) % 2];
      PendingExchange pending;
      if (step + 1 < count) {
        const Transfer transfers[] = {
            Transfer::Send(next, current.k.data, bytes),
            Transfer::Send(next, current.v.data, bytes),
            Transfer::Receive(prev, incoming.k.data, bytes),
            Transfer::Receive(prev, incoming.v.data, bytes)};
        DA_ASSIGN_OR_RETURN(pending, comm_.StartExchange(transfers, buffers_));
      }
      const RankRows& source = segment.holders[(self - step + count) % count];
      if (Attends(mine.rows, source, segment)) {
        DA_RETURN_IF_ERROR(AttendBlock(g, mine, source, current, acc));
      }
      if (pending.active()) {
        DA_RETURN_IF_ERROR(comm_.FinishExchange(std::move(pending)));
      }
    }
    return StoreBlockResult(g, mine, acc);
  }

  // Uneven segments: this rank's queries sit at their rows of a dense
  // problem over the gathered keys [0, key_end); the other query rows are
  // zero and their outputs discarded.
  absl::Status ForwardWholeSegment(const GroupParams& g,
                                   const SharedSegment& segment,
                                   const Mine& mine) {
    KeyRows keys;
    DA_ASSIGN_OR_RETURN(Scratch key_scratch, DenseKeys(mine, mine.key_end, &keys));
    DA_RETURN_IF_ERROR(GatherKeys(g, segment, mine, keys));
    const RowsShape all{p_.batch, mine.key_end, g.num_heads, p_.head_dim};
    const size_t bytes = RowBytes(all, mine.key_end);
    const int64_t lse_rows = all.batch * all.heads * all.rows;
    DA_ASSIGN_OR_RETURN(Scratch scratch,
                        local_.Allocate(2 * bytes + FloatBytes(lse_rows)));
    const TensorParams q = DenseRows(scratch.data(), all);
    const TensorParams out = DenseRows(scratch.as<char>() + bytes, all);
    float* lse = reinterpret_cast<float*>(scratch.as<char>() + 2 * bytes);
    DA_RETURN_IF_ERROR(local_.ZeroRows(p_.dtype, all, q));
    DA_RETURN_IF_ERROR(local_.CopyRows(
        p_.dtype, mine.shape, View(p_.q, mine.first_row, g, g.dilation_rate),
        RowsAt(q, mine.rows.begin)));
    DA_RETURN_IF_ERROR(local_.Forward(BlockParams(q, keys, out, lse,
                                                  mine.key_end, g.num_heads,
                                                  p_.is_causal,
                                                  p_.output_scale)));
    DA_RETURN_IF_ERROR(local_.CopyRows(
        p_.dtype, mine.shape, RowsAt(out, mine.rows.begin),
        View(p_.out, mine.first_row, g, g.dilation_rate)));
    if (p_.lse == nullptr) return absl::OkStatus();
    return local_.CopyLse(
        mine.shape,
        LseView{lse + mine.rows.begin, all.heads * all.rows, all.rows, 1},
        LseOf(p_, mine.first_row, g, g.dilation_rate));
  }

  // ---- Backward ----------------------------------------------------------

  // The per-rank views of a backward pass over this rank's rows.
  struct GradientViews {
    TensorParams out;
    TensorParams grad_out;
    TensorParams grad_q;
    TensorParams grad_k;
    TensorParams grad_v;
  };

  GradientViews GradientsOf(const BackwardParams& params, const GroupParams& g,
                            const Mine& mine) const {
    const int64_t r = g.dilation_rate;
    return GradientViews{View(p_.out, mine.first_row, g, r),
                         View(params.grad_out, mine.first_row, g, r),
                         View(params.grad_q, mine.first_row, g, r),
                         View(params.grad_k, mine.first_row, g, r),
                         View(params.grad_v, mine.first_row, g, r)};
  }

  absl::Status BackwardShared(const BackwardParams& params,
                              const GroupParams& g,
                              const SharedSegment& segment) {
    DA_RETURN_IF_ERROR(ZeroPortion(
        g, segment, {params.grad_q, params.grad_k, params.grad_v}, nullptr));
    if (segment.self < 0) return absl::OkStatus();
    const Mine mine = MineOf(g, segment);
    const GradientViews views = GradientsOf(params, g, mine);
    if (!segment.EqualBlocks()) {
      return BackwardWholeSegment(g, segment, mine, views);
    }
    // This rank's lse rows, dense, as the kernels read them.
    const RowsShape& s = mine.shape;
    DA_ASSIGN_OR_RETURN(Scratch lse_scratch,
                        local_.Allocate(FloatBytes(s.batch * s.heads * s.rows)));
    float* lse = lse_scratch.as<float>();
    DA_RETURN_IF_ERROR(local_.CopyLse(s, LseOf(p_, mine.first_row, g,
                                               g.dilation_rate),
                                      DenseLse(lse, s)));
    if (algorithm_ == SequenceParallelAlgorithm::kRing) {
      return BackwardRing(g, segment, mine, views, lse);
    }
    KeyRows keys;
    DA_ASSIGN_OR_RETURN(Scratch key_scratch, DenseKeys(mine, mine.key_end, &keys));
    DA_RETURN_IF_ERROR(GatherKeys(g, segment, mine, keys));
    KeyRows grads;
    DA_ASSIGN_OR_RETURN(Scratch grad_scratch,
                        DenseKeys(mine, mine.key_end, &grads));
    DA_ASSIGN_OR_RETURN(QueryGradient dq, NewQueryGradient(mine));
    for (const RankRows& t : segment.holders) {
      if (!Attends(mine.rows, t, segment)) continue;
      DA_RETURN_IF_ERROR(BackwardBlock(
          g, mine, views, lse, t,
          KeyRows{RowsAt(keys.k, t.begin), RowsAt(keys.v, t.begin)},
          KeyRows{RowsAt(grads.k, t.begin), RowsAt(grads.v, t.begin)}, dq));
    }
    DA_RETURN_IF_ERROR(local_.StoreAccumulator(p_.dtype, s, dq.acc, 1.0f,
                                               views.grad_q,
                                               LseView{nullptr, 0, 0, 0}));
    return ReduceKeyGradients(segment, mine, grads, views);
  }

  struct QueryGradient {
    Scratch scratch;
    Accumulator acc;
    TensorParams piece;
  };

  absl::StatusOr<QueryGradient> NewQueryGradient(const Mine& mine) {
    const RowsShape& s = mine.shape;
    const int64_t values = s.rows * s.batch * s.heads * s.head_dim;
    QueryGradient dq;
    DA_ASSIGN_OR_RETURN(dq.scratch, local_.Allocate(FloatBytes(values) +
                                                    RowBytes(s, s.rows)));
    dq.acc = Accumulator{dq.scratch.as<float>(), nullptr};
    dq.piece = DenseRows(dq.scratch.as<float>() + values, s);
    DA_RETURN_IF_ERROR(local_.ClearAccumulator(s, dq.acc));
    return dq;
  }

  // The gradients of this rank's queries attending holder t's block: dQ
  // added to dq, dK and dV written to `key_grads` (dense, the block's rows).
  absl::Status BackwardBlock(const GroupParams& g, const Mine& mine,
                             const GradientViews& views, float* lse,
                             const RankRows& t, const KeyRows& keys,
                             const KeyRows& key_grads, QueryGradient& dq) {
    const bool diagonal = t.rank == comm_.rank();
    BackwardParams block;
    block.forward = BlockParams(View(p_.q, mine.first_row, g, g.dilation_rate),
                                keys, views.out, lse, mine.rows.size(),
                                g.num_heads, p_.is_causal && diagonal,
                                p_.output_scale);
    block.grad_out = views.grad_out;
    block.grad_q = dq.piece;
    block.grad_k = key_grads.k;
    block.grad_v = key_grads.v;
    DA_RETURN_IF_ERROR(local_.Backward(block));
    return local_.AddInto(p_.dtype, mine.shape, dq.piece, dq.acc);
  }

  // Sends the key gradients of the other holders' rows (dense `grads`,
  // indexed like the gathered keys) to them, receives the ones of this
  // rank's rows from every rank that attended them, and stores the sums.
  absl::Status ReduceKeyGradients(const SharedSegment& segment,
                                  const Mine& mine, const KeyRows& grads,
                                  const GradientViews& views) {
    const RowsShape& s = mine.shape;
    const size_t own_bytes = RowBytes(s, s.rows);
    std::vector<Transfer> transfers;
    int senders = 0;
    for (const RankRows& t : segment.holders) {
      if (t.rank == comm_.rank()) continue;
      if (Attends(t, mine.rows, segment)) ++senders;
    }
    DA_ASSIGN_OR_RETURN(Scratch received,
                        local_.Allocate(2 * senders * own_bytes));
    std::vector<TensorParams> pieces;
    for (const RankRows& t : segment.holders) {
      if (t.rank == comm_.rank()) continue;
      if (Attends(mine.rows, t, segment)) {
        const size_t bytes = RowBytes(s, t.size());
        transfers.push_back(
            Transfer::Send(t.rank, RowsAt(grads.k, t.begin).data, bytes));
        transfers.push_back(
            Transfer::Send(t.rank, RowsAt(grads.v, t.begin).data, bytes));
      }
      if (Attends(t, mine.rows, segment)) {
        char* slot = received.as<char>() + pieces.size() * own_bytes;
        transfers.push_back(Transfer::Receive(t.rank, slot, own_bytes));
        transfers.push_back(
            Transfer::Receive(t.rank, slot + own_bytes, own_bytes));
        pieces.push_back(DenseRows(slot, s));
        pieces.push_back(DenseRows(slot + own_bytes, s));
      }
    }
    DA_RETURN_IF_ERROR(comm_.Exchange(transfers, buffers_));
    const int64_t values = s.rows * s.batch * s.heads * s.head_dim;
    DA_ASSIGN_OR_RETURN(Scratch sums, local_.Allocate(FloatBytes(2 * values)));
    const Accumulator dk{sums.as<float>(), nullptr};
    const Accumulator dv{sums.as<float>() + values, nullptr};
    DA_RETURN_IF_ERROR(local_.ClearAccumulator(s, dk));
    DA_RETURN_IF_ERROR(local_.ClearAccumulator(s, dv));
    DA_RETURN_IF_ERROR(
        local_.AddInto(p_.dtype, s, RowsAt(grads.k, mine.rows.begin), dk));
    DA_RETURN_IF_ERROR(
        local_.AddInto(p_.dtype, s, RowsAt(grads.v, mine.rows.begin), dv));
    for (size_t i = 0; i < pieces.size(); i += 2) {
      DA_RETURN_IF_ERROR(local_.AddInto(p_.dtype, s, pieces[i], dk));
      DA_RETURN_IF_ERROR(local_.AddInto(p_.dtype, s, pieces[i + 1], dv));
    }
    const LseView none{nullptr, 0, 0, 0};
    DA_RETURN_IF_ERROR(
        local_.StoreAccumulator(p_.dtype, s, dk, 1.0f, views.grad_k, none));
    return local_.StoreAccumulator(p_.dtype, s, dv, 1.0f, views.grad_v, none);
  }

  // The blocks travel around the segment's ranks with float32 key
  // gradients that every rank adds to; after the last step each block's
  // gradients take one more hop, to their owner.
  absl::Status BackwardRing(const GroupParams& g, const SharedSegment& segment,
                            const Mine& mine, const GradientViews& views,
                            float* lse) {
    const int count = static_cast<int>(segment.holders.size());
    const int self = segment.self;
    const int next = segment.holders[(self + 1) % count].rank;
    const int prev = segment.holders[(self + count - 1) % count].rank;
    const RowsShape& s = mine.shape;
    const int64_t rows = s.rows;
    const int64_t values = rows * s.batch * s.heads * s.head_dim;
    const size_t bytes = RowBytes(s, rows);
    const size_t grad_bytes = FloatBytes(values);
    // Per slot: K, V (dtype) and dK, dV (float32).
    struct Slot {
      KeyRows keys;
      Accumulator dk;
      Accumulator dv;
    };
    DA_ASSIGN_OR_RETURN(Scratch scratch,
                        local_.Allocate(2 * (2 * bytes + 2 * grad_bytes) +
                                        2 * bytes));
    char* base = scratch.as<char>();
    Slot slots[2];
    for (int i = 0; i < 2; ++i) {
      char* slot = base + i * (2 * bytes + 2 * grad_bytes);
      slots[i].keys = KeyRows{DenseRows(slot, s), DenseRows(slot + bytes, s)};
      slots[i].dk = Accumulator{reinterpret_cast<float*>(slot + 2 * bytes),
                                nullptr};
      slots[i].dv = Accumulator{
          reinterpret_cast<float*>(slot + 2 * bytes + grad_bytes), nullptr};
    }
    char* piece_base = base + 2 * (2 * bytes + 2 * grad_bytes);
    const KeyRows key_grads{DenseRows(piece_base, s),
                            DenseRows(piece_base + bytes, s)};
    DA_RETURN_IF_ERROR(CopyOwnKeys(g, mine, slots[0].keys, 0));
    DA_RETURN_IF_ERROR(local_.ClearAccumulator(s, slots[0].dk));
    DA_RETURN_IF_ERROR(local_.ClearAccumulator(s, slots[0].dv));
    DA_ASSIGN_OR_RETURN(QueryGradient dq, NewQueryGradient(mine));
    for (int step = 0; step < count; ++step) {
      Slot& current = slots[step % 2];
      Slot& incoming = slots[(step + 1) % 2];
      // K and V leave at once; their gradients follow once this rank has
      // added its part.
      PendingExchange pending;
      if (step + 1 < count) {
        const Transfer transfers[] = {
            Transfer::Send(next, current.keys.k.data, bytes),
            Transfer::Send(next, current.keys.v.data, bytes),
            Transfer::Receive(prev, incoming.keys.k.data, bytes),
            Transfer::Receive(prev, incoming.keys.v.data, bytes)};
        DA_ASSIGN_OR_RETURN(pending, comm_.StartExchange(transfers, buffers_));
      }
      const RankRows& source = segment.holders[(self - step + count) % count];
      if (Attends(mine.rows, source, segment)) {
        DA_RETURN_IF_ERROR(BackwardBlock(g, mine, views, lse, source,
                                         current.keys, key_grads, dq));
        DA_RETURN_IF_ERROR(
            local_.AddInto(p_.dtype, s, key_grads.k, current.dk));
        DA_RETURN_IF_ERROR(
            local_.AddInto(p_.dtype, s, key_grads.v, current.dv));
      }
      if (pending.active()) {
        DA_RETURN_IF_ERROR(comm_.FinishExchange(std::move(pending)));
      }
      if (count > 1) {
        // After the last step the gradients go to the block's owner, which
        // is the next rank.
        const Transfer transfers[] = {
            Transfer::Send(next, current.dk.data, grad_bytes),
            Transfer::Send(next, current.dv.data, grad_bytes),
            Transfer::Receive(prev, incoming.dk.data, grad_bytes),
            Transfer::Receive(prev, incoming.dv.data, grad_bytes)};
        DA_RETURN_IF_ERROR(comm_.Exchange(transfers, buffers_));
      }
    }
    // After `count` hops of the gradients each rank holds its own block's.
    const Slot& own = slots[count > 1 ? count % 2 : 0];
    const LseView none{nullptr, 0, 0, 0};
    DA_RETURN_IF_ERROR(local_.StoreAccumulator(
        p_.dtype, s, dq.acc, 1.0f, views.grad_q, none));
    DA_RETURN_IF_ERROR(
        StoreFloatRows(s, own.dk, views.grad_k));
    return StoreFloatRows(s, own.dv, views.grad_v);
  }

  absl::Status StoreFloatRows(const RowsShape& s, const Accumulator& acc,
                              const TensorParams& dst) {
    return local_.StoreAccumulator(p_.dtype, s, acc, 1.0f, dst,
                                   LseView{nullptr, 0, 0, 0});
  }

  // Uneven segments: one dense backward over the gathered keys with this
  // rank's rows in place and the others zero (their dO is zero, so they add
  // nothing to dK or dV).
  absl::Status BackwardWholeSegment(const GroupParams& g,
                                    const SharedSegment& segment,
                                    const Mine& mine,
                                    const GradientViews& views) {
    KeyRows keys;
    DA_ASSIGN_OR_RETURN(Scratch key_scratch, DenseKeys(mine, mine.key_end, &keys));
    DA_RETURN_IF_ERROR(GatherKeys(g, segment, mine, keys));
    KeyRows grads;
    DA_ASSIGN_OR_RETURN(Scratch grad_scratch,
                        DenseKeys(mine, mine.key_end, &grads));
    const RowsShape all{p_.batch, mine.key_end, g.num_heads, p_.head_dim};
    const size_t bytes = RowBytes(all, mine.key_end);
    const int64_t lse_rows = all.batch * all.heads * all.rows;
    DA_ASSIGN_OR_RETURN(Scratch scratch,
                        local_.Allocate(4 * bytes + FloatBytes(lse_rows)));
    char* base = scratch.as<char>();
    const TensorParams q = DenseRows(base, all);
    const TensorParams out = DenseRows(base + bytes, all);
    const TensorParams grad_out = DenseRows(base + 2 * bytes, all);
    const TensorParams grad_q = DenseRows(base + 3 * bytes, all);
    float* lse = reinterpret_cast<float*>(base + 4 * bytes);
    const int64_t r = g.dilation_rate;
    const struct {
      TensorParams dense;
      TensorParams shard;
    } inputs[] = {{q, View(p_.q, mine.first_row, g, r)},
                  {out, views.out},
                  {grad_out, views.grad_out}};
    for (const auto& input : inputs) {
      DA_RETURN_IF_ERROR(local_.ZeroRows(p_.dtype, all, input.dense));
      DA_RETURN_IF_ERROR(local_.CopyRows(p_.dtype, mine.shape, input.shard,
                                         RowsAt(input.dense, mine.rows.begin)));
    }
    // Any finite lse keeps the zero rows' probabilities finite; their dO is
    // zero, so they contribute nothing.
    DA_RETURN_IF_ERROR(local_.FillLse(all, DenseLse(lse, all), 0.0f));
    DA_RETURN_IF_ERROR(local_.CopyLse(
        mine.shape, LseOf(p_, mine.first_row, g, r),
        LseView{lse + mine.rows.begin, all.heads * all.rows, all.rows, 1}));
    BackwardParams block;
    block.forward = BlockParams(q, keys, out, lse, mine.key_end, g.num_heads,
                                p_.is_causal, p_.output_scale);
    block.grad_out = grad_out;
    block.grad_q = grad_q;
    block.grad_k = grads.k;
    block.grad_v = grads.v;
    DA_RETURN_IF_ERROR(local_.Backward(block));
    DA_RETURN_IF_ERROR(local_.CopyRows(p_.dtype, mine.shape,
                                       RowsAt(grad_q, mine.rows.begin),
                                       views.grad_q));
    return ReduceKeyGradients(segment, mine, grads, views);
  }

  const ForwardParams& p_;
  SequenceParallelAlgorithm algorithm_;
  Communicator& comm_;
  LocalKernels& local_;
  int64_t elem_;
  Buffers buffers_;
  int64_t shard_begin_;
};

}  // namespace

absl::Status ShardForward(const ForwardParams& params,
                          SequenceParallelAlgorithm algorithm,
                          Communicator& comm, LocalKernels& local) {
  // One rank holds the whole sequence, in any layout.
  if (comm.size() == 1) return local.Forward(params);
  return ShardRunner(params, algorithm, comm, local).Forward();
}

absl::Status ShardBackward(const BackwardParams& params,
                           SequenceParallelAlgorithm algorithm,
                           Communicator& comm, LocalKernels& local) {
  if (comm.size() == 1) return local.Backward(params);
  return ShardRunner(params.forward, algorithm, comm, local).Backward(params);
}

}  // namespace distributed
}  // namespace dilated
