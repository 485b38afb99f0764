#include <algorithm>
#include <cstring>
#include <optional>
#include <vector>

#include "kernels/cuda/flash_backward.cuh"
#include "kernels/cuda/flash_common.cuh"
#include "tests/cuda/flash_work_sim.h"

namespace dilated {
namespace testing {
namespace {

using kernels::ForwardParams;
using kernels::TensorParams;
using kernels::gpu::FlashProblem;
using kernels::gpu::FlashProblems;
using kernels::gpu::ProblemIndex;
using kernels::gpu::ProblemTable;
using kernels::gpu::WorkItem;

// Columns of the simulated tensors: one 16-byte chunk of 2-byte elements.
constexpr int64_t kColumns = 8;

// The table of one launch, staged as ProblemTable stages it and held in
// host memory that stands in for the device scratch.
class HostTable {
 public:
  // `rows_per_block` 0 adds the delta kernel's rows.
  HostTable(const ForwardParams& p, const std::vector<FlashProblem>& problems,
            int rows_per_block)
      : memory_((ProblemTable::Bytes(problems.size()) + 7) / 8) {
    const FlashProblems host{
        problems.data(), static_cast<int64_t>(problems.size()), memory_.data()};
    ProblemTable table(&host, p);
    index_ =
        rows_per_block == 0 ? table.AddRows() : table.AddBlocks(rows_per_block);
    std::memcpy(memory_.data(), table.staged().data(), table.staged().size());
  }
  // index() points into memory_.
  HostTable(const HostTable&) = delete;
  HostTable& operator=(const HostTable&) = delete;

  const ProblemIndex& index() const { return index_; }

 private:
  std::vector<int64_t> memory_;
  ProblemIndex index_;
};

// The [sb, rows, heads, kColumns] grid with the front end's strides, and the
// [sb, heads, rows] lse beside it.
class Grid {
 public:
  explicit Grid(const ForwardParams& p)
      : rows_(p.seq_len),
        heads_(p.num_heads),
        packed_(IsPacked(p)),
        data_(StorageBatch(p) * rows_ * heads_ * kColumns),
        lse_(StorageBatch(p) * heads_ * rows_) {
    tensor_.data = data_.data();
    tensor_.stride_h = kColumns;
    tensor_.stride_n = heads_ * kColumns;
    tensor_.stride_b = packed_ ? 0 : rows_ * heads_ * kColumns;
    lse_stride_h_ = rows_;
    lse_stride_b_ = packed_ ? 0 : heads_ * rows_;
  }

  const TensorParams& tensor() const { return tensor_; }
  float* lse() { return lse_.data(); }
  int64_t lse_stride_b() const { return lse_stride_b_; }
  int64_t lse_stride_h() const { return lse_stride_h_; }
  int64_t size() const { return static_cast<int64_t>(lse_.size()); }

  // Returns the count index of an element of the tensor.
  int64_t Cell(const uint16_t* element) const {
    const int64_t offset = element - data_.data();
    const int64_t row_stride = heads_ * kColumns;
    const int64_t b = packed_ ? 0 : offset / (rows_ * row_stride);
    const int64_t row = (offset / row_stride) % rows_;
    const int64_t head = (offset % row_stride) / kColumns;
    return (b * rows_ + row) * heads_ + head;
  }

  // Returns the count index of an lse entry.
  int64_t LseCell(const float* entry) const {
    const int64_t offset = entry - lse_.data();
    const int64_t b = offset / (heads_ * rows_);
    const int64_t head = (offset / rows_) % heads_;
    const int64_t row = offset % rows_;
    return (b * rows_ + row) * heads_ + head;
  }

 private:
  int64_t rows_;
  int64_t heads_;
  bool packed_;
  std::vector<uint16_t> data_;
  std::vector<float> lse_;
  TensorParams tensor_;
  int64_t lse_stride_b_;
  int64_t lse_stride_h_;
};

bool SameWorkItem(const WorkItem& a, const WorkItem& b) {
  return a.group == b.group && a.batch == b.batch &&
         a.segment_row == b.segment_row && a.head == b.head &&
         a.first == b.first && a.step == b.step && a.length == b.length &&
         a.extent == b.extent && a.block == b.block &&
         a.num_blocks == b.num_blocks;
}

}  // namespace

SimulatedWrites SimulateLaunch(const ForwardParams& p,
                               const std::vector<FlashProblem>* problems,
                               int rows_per_block, bool heavy_last_first) {
  Grid grid(p);
  SimulatedWrites writes;
  for (std::vector<int>* counts :
       {&writes.rows, &writes.zeros, &writes.lse_rows, &writes.lse_zeros}) {
    counts->assign(grid.size(), 0);
  }
  int64_t block_begin[kernels::kMaxGroups + 1];
  ProblemIndex general{nullptr, nullptr, 0, 0};
  std::optional<HostTable> table;
  if (problems != nullptr) {
    table.emplace(p, *problems, rows_per_block);
    general = table->index();
  }
  const int64_t blocks =
      kernels::gpu::LaunchBlocks(p, general, rows_per_block, block_begin);
  for (int64_t index = 0; index < blocks; ++index) {
    const WorkItem w = kernels::gpu::DecodeBlock(
        block_begin, general, p, index, rows_per_block, heavy_last_first);
    const int j_begin = w.block * rows_per_block;
    const int j_end = std::min(j_begin + rows_per_block, w.length);
    const uint16_t* row0 =
        kernels::gpu::SelectedRow0<uint16_t>(grid.tensor(), w);
    const int64_t step = kernels::gpu::RowStep(grid.tensor(), w);
    const float* lse = kernels::gpu::SegmentStart(
        grid.lse(), grid.lse_stride_b(), grid.lse_stride_h(), w);
    for (int j = j_begin; j < j_end; ++j) {
      ++writes.rows[grid.Cell(row0 + j * step)];
      ++writes.lse_rows[grid.LseCell(lse + w.first + j * w.step)];
    }
    const kernels::gpu::UnselectedRuns runs(w, j_begin, j_end);
    const uint16_t* segment =
        kernels::gpu::SegmentStart<uint16_t>(grid.tensor(), w);
    for (int k = 0; k < runs.count; ++k) {
      const int position = runs.Position(k);
      ++writes.zeros[grid.Cell(segment + position * grid.tensor().stride_n)];
      ++writes.lse_zeros[grid.LseCell(lse + position)];
    }
  }
  return writes;
}

std::vector<int> SimulateDeltaRows(const ForwardParams& p,
                                   const std::vector<FlashProblem>* problems) {
  Grid grid(p);
  std::vector<int> counts(grid.size(), 0);
  kernels::gpu::FlashDeltaArgs args;
  args.params.forward = p;
  args.general = ProblemIndex{nullptr, nullptr, 0, 0};
  args.delta = grid.lse();
  args.delta_stride_b = kernels::gpu::DeltaStrideB(p);
  std::optional<HostTable> table;
  int64_t rows = 0;
  if (problems != nullptr) {
    table.emplace(p, *problems, 0);
    args.general = table->index();
    rows = args.general.total;
  } else {
    rows = kernels::gpu::FillRowBegin(p, args.row_begin);
  }
  for (int64_t index = 0; index < rows; ++index) {
    int j;
    const WorkItem w = kernels::gpu::DecodeDeltaRow(args, index, &j);
    const float* target = kernels::gpu::SegmentStart(
                              args.delta, args.delta_stride_b, p.seq_len, w) +
                          w.first + j * w.step;
    ++counts[grid.LseCell(target)];
  }
  return counts;
}

int64_t CountDecodeDifferences(const ForwardParams& p,
                               const std::vector<FlashProblem>& problems,
                               int rows_per_block, bool heavy_last_first) {
  int64_t block_begin[kernels::kMaxGroups + 1];
  const int64_t closed_blocks =
      kernels::gpu::FillBlockBegin(p, rows_per_block, block_begin);
  const HostTable table(p, problems, rows_per_block);
  if (table.index().total != closed_blocks) return -1;
  int64_t differences = 0;
  for (int64_t index = 0; index < closed_blocks; ++index) {
    const WorkItem closed = kernels::gpu::DecodeWork(
        block_begin, p, index, rows_per_block, heavy_last_first);
    const WorkItem listed = kernels::gpu::DecodeProblemWork(
        table.index(), p, index, rows_per_block, heavy_last_first);
    differences += SameWorkItem(closed, listed) ? 0 : 1;
  }
  return differences;
}

}  // namespace testing
}  // namespace dilated
