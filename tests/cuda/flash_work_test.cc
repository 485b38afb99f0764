// The fused CUDA kernels' work decomposition, checked on the host
// (flash_work_sim.h): for every layout the problem-list path serves (partial
// segments, packed batches with sequences of length 0, 1 and shorter than a
// segment, key padding at either end), every launch shape writes each
// element of out, lse and the delta buffer exactly once, as a computed row
// exactly where the group selects an unpadded position and as a zero
// elsewhere; for fixed layouts the problem list decodes every block as the
// closed form does. A mask with padding between kept positions is refused.

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "attention/config.h"
#include "attention/improved_cuda_layout.h"
#include "attention/options.h"
#include "attention/params_builder.h"
#include "attention/tensor.h"
#include "gtest/gtest.h"
#include "kernels/dilated_params.h"
#include "tests/cuda/flash_work_sim.h"

namespace dilated {
namespace {

using kernels::ForwardParams;
using kernels::gpu::FlashProblem;
using testing::SimulatedWrites;

// Positions [begin, end) of a batch entry that a key padding mask keeps.
struct KeptRange {
  int64_t begin;
  int64_t end;
};

// Returns the [batch, seq] key padding mask that keeps kept[b] of entry b.
std::vector<uint8_t> KeepOnly(int64_t batch, int64_t seq,
                              const std::vector<KeptRange>& kept) {
  std::vector<uint8_t> mask(batch * seq, 1);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t n = kept[b].begin; n < kept[b].end; ++n) mask[b * seq + n] = 0;
  }
  return mask;
}

struct Layout {
  std::string name;
  int64_t batch;
  int64_t seq;
  int64_t heads;
  std::vector<int64_t> segments;
  std::vector<int64_t> rates;
  // Packed when not empty (batch and seq unused).
  std::vector<int64_t> seq_lens = {};
  // A [batch, seq] key padding mask when not empty.
  std::vector<uint8_t> mask = {};
};

void PrintTo(const Layout& layout, std::ostream* os) { *os << layout.name; }

Layout Packed(std::string name, std::vector<int64_t> seq_lens, int64_t heads,
              std::vector<int64_t> segments, std::vector<int64_t> rates) {
  Layout layout{std::move(name), 0, 0, heads, std::move(segments),
                std::move(rates)};
  layout.seq_lens = std::move(seq_lens);
  return layout;
}

Layout Padded(Layout layout, const std::vector<KeptRange>& kept) {
  layout.mask = KeepOnly(layout.batch, layout.seq, kept);
  return layout;
}

// The host tensors and layout tensors of one call, and its params as the
// front end makes them (head_dim 8; the kernels' arithmetic does not depend
// on it).
class Call {
 public:
  explicit Call(const Layout& layout) : layout_(layout), mask_(layout.mask) {
    const bool packed = !layout.seq_lens.empty();
    offsets_ = {0};
    for (int64_t length : layout.seq_lens) {
      offsets_.push_back(offsets_.back() + static_cast<int32_t>(length));
    }
    const int64_t rows = packed ? offsets_.back() : layout.batch * layout.seq;
    data_.assign(rows * layout.heads * kHeadDim, 0);
    const TensorView tensor =
        packed ? TensorView::Contiguous(data_.data(), DType::kFloat16,
                                        {rows, layout.heads, kHeadDim})
               : TensorView::Contiguous(
                     data_.data(), DType::kFloat16,
                     {layout.batch, layout.seq, layout.heads, kHeadDim});
    AttentionConfig config;
    config.segment_lengths = layout.segments;
    config.dilation_rates = layout.rates;
    ForwardOptions options;
    if (packed) {
      options.cu_seqlens =
          TensorView::Contiguous(offsets_.data(), DType::kInt32,
                                 {static_cast<int64_t>(offsets_.size())});
    }
    if (!mask_.empty()) {
      options.key_padding_mask = TensorView::Contiguous(
          mask_.data(), DType::kBool, {layout.batch, layout.seq});
    }
    params_ = MakeForwardParams(config, tensor, tensor, tensor, tensor,
                                /*lse=*/nullptr, options);
  }

  // The params point into this object.
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;

  const absl::StatusOr<ForwardParams>& params() const { return params_; }

  // Returns, per (storage batch entry, row, head) of the grid the simulation
  // counts on, whether the row computes attention: its group selects the
  // position and the mask keeps it.
  std::vector<bool> Selected() const {
    const ForwardParams& p = *params_;
    const bool packed = !layout_.seq_lens.empty();
    const int64_t sequences =
        packed ? static_cast<int64_t>(layout_.seq_lens.size()) : layout_.batch;
    std::vector<bool> selected(
        (packed ? 1 : layout_.batch) * p.seq_len * p.num_heads, false);
    for (int64_t b = 0; b < sequences; ++b) {
      const int64_t length = packed ? layout_.seq_lens[b] : layout_.seq;
      const int64_t first_row = packed ? offsets_[b] : 0;
      const int64_t grid_b = packed ? 0 : b;
      for (int gi = 0; gi < p.num_groups; ++gi) {
        const kernels::GroupParams& g = p.groups[gi];
        for (int64_t n = 0; n < length; ++n) {
          const int64_t within = n % g.segment_length - g.offset;
          const bool padded = !mask_.empty() && mask_[b * layout_.seq + n];
          if (within < 0 || within % g.dilation_rate != 0 || padded) continue;
          for (int64_t h = g.head_begin; h < g.head_begin + g.num_heads; ++h) {
            selected[((grid_b * p.seq_len) + first_row + n) * p.num_heads + h] =
                true;
          }
        }
      }
    }
    return selected;
  }

 private:
  static constexpr int64_t kHeadDim = 8;

  Layout layout_;
  std::vector<int32_t> offsets_;
  std::vector<uint8_t> mask_;
  std::vector<uint16_t> data_;
  absl::StatusOr<ForwardParams> params_;
};

// Returns the number of cells where the counts differ from "once where
// selected" (computed rows) and "once elsewhere" (zeros).
int64_t Mismatches(const std::vector<bool>& selected,
                   const std::vector<int>& computed,
                   const std::vector<int>& zeroed) {
  int64_t mismatches = 0;
  for (size_t i = 0; i < selected.size(); ++i) {
    mismatches += computed[i] != (selected[i] ? 1 : 0) ||
                  zeroed[i] != (selected[i] ? 0 : 1);
  }
  return mismatches;
}

// Whole segments without a mask: the closed form.
std::vector<Layout> ClosedFormLayouts() {
  return {Layout{"whole", 2, 256, 5, {32, 64, 128}, {1, 2, 4}},
          Layout{"same_rates", 2, 256, 6, {64, 64, 128}, {2, 2, 2}},
          Layout{"offset_past_segment", 1, 64, 3, {16, 16, 2}, {1, 1, 4}}};
}

// Rows per thread block of the kernels' launches (16: finer than any, for
// more block boundaries).
constexpr int kRowsPerBlock[] = {16, 32, 64, 128};

class FlashWorkTest : public ::testing::TestWithParam<Layout> {};

TEST_P(FlashWorkTest, EveryElementWrittenOnce) {
  const Call call(GetParam());
  ASSERT_TRUE(call.params().ok()) << call.params().status();
  const ForwardParams& p = *call.params();
  const absl::StatusOr<std::vector<FlashProblem>> problems = FlashProblemsOf(p);
  ASSERT_TRUE(problems.ok()) << problems.status();
  const std::vector<bool> selected = call.Selected();
  for (int rows_per_block : kRowsPerBlock) {
    for (bool heavy_last_first : {false, true}) {
      SCOPED_TRACE(::testing::Message()
                   << "rows per block " << rows_per_block
                   << ", heavy last first " << heavy_last_first);
      const SimulatedWrites writes = testing::SimulateLaunch(
          p, &*problems, rows_per_block, heavy_last_first);
      EXPECT_EQ(Mismatches(selected, writes.rows, writes.zeros), 0) << "out";
      EXPECT_EQ(Mismatches(selected, writes.lse_rows, writes.lse_zeros), 0)
          << "lse";
    }
  }
  const std::vector<int> delta = testing::SimulateDeltaRows(p, &*problems);
  std::vector<int> complement(delta.size());
  for (size_t i = 0; i < delta.size(); ++i) complement[i] = !selected[i];
  EXPECT_EQ(Mismatches(selected, delta, complement), 0) << "delta";
}

// Partial segments, packed batches and padding: the problem-list path.
INSTANTIATE_TEST_SUITE_P(
    ProblemList, FlashWorkTest,
    ::testing::Values(
        Layout{"partial", 2, 700, 4, {256, 512}, {1, 2}},
        Layout{"partial_next_to_whole", 1, 600, 3, {100, 256, 512}, {1, 2, 4}},
        // The last segment of 512 holds one position, before the offset.
        Layout{"offset_past_end", 1, 513, 2, {256, 512}, {1, 4}},
        Layout{"shorter_than_segments", 2, 5, 2, {8, 16}, {1, 2}},
        Packed("packed", {700, 1, 0, 64, 2049}, 4, {256, 1024}, {1, 2}),
        Packed("packed_short", {5, 100, 17, 250}, 3, {512, 1024}, {1, 2}),
        Packed("packed_rates", {37, 1, 0, 64, 130, 5}, 5, {16, 32, 64},
               {1, 2, 4}),
        Padded({"right_padding", 3, 512, 4, {128, 256}, {1, 2}},
               {{0, 512}, {0, 301}, {0, 0}}),
        Padded({"right_padding_partial", 2, 600, 4, {256, 512}, {1, 2}},
               {{0, 600}, {0, 250}}),
        Padded({"left_padding", 2, 384, 4, {128, 384}, {1, 3}},
               {{100, 384}, {0, 384}}),
        Padded({"both_ends", 2, 256, 2, {64, 256}, {1, 2}},
               {{3, 250}, {70, 130}})),
    [](const ::testing::TestParamInfo<Layout>& info) {
      return info.param.name;
    });

// The problem list of fixed layouts too (the backend takes the closed form
// for them; the list must agree with it).
INSTANTIATE_TEST_SUITE_P(ClosedForm, FlashWorkTest,
                         ::testing::ValuesIn(ClosedFormLayouts()),
                         [](const ::testing::TestParamInfo<Layout>& info) {
                           return info.param.name;
                         });

// The closed form writes every element once, and the problem list decodes
// every block as it does.
TEST(FlashWorkClosedFormTest, ProblemListDecodesAsClosedForm) {
  for (const Layout& layout : ClosedFormLayouts()) {
    SCOPED_TRACE(layout.name);
    const Call call(layout);
    ASSERT_TRUE(call.params().ok()) << call.params().status();
    const ForwardParams& p = *call.params();
    const absl::StatusOr<std::vector<FlashProblem>> problems =
        FlashProblemsOf(p);
    ASSERT_TRUE(problems.ok()) << problems.status();
    const std::vector<bool> selected = call.Selected();
    for (int rows_per_block : kRowsPerBlock) {
      for (bool heavy_last_first : {false, true}) {
        EXPECT_EQ(testing::CountDecodeDifferences(p, *problems, rows_per_block,
                                                  heavy_last_first),
                  0)
            << rows_per_block << " rows per block";
        const SimulatedWrites writes = testing::SimulateLaunch(
            p, nullptr, rows_per_block, heavy_last_first);
        EXPECT_EQ(Mismatches(selected, writes.rows, writes.zeros), 0);
        EXPECT_EQ(Mismatches(selected, writes.lse_rows, writes.lse_zeros), 0);
      }
    }
    const std::vector<int> delta = testing::SimulateDeltaRows(p, nullptr);
    std::vector<int> complement(delta.size());
    for (size_t i = 0; i < delta.size(); ++i) complement[i] = !selected[i];
    EXPECT_EQ(Mismatches(selected, delta, complement), 0) << "delta";
  }
}

TEST(FlashWorkHolesTest, PaddingBetweenKeptPositionsIsUnimplemented) {
  // Batch entry 1 keeps [0, 200) except position 10: a hole in the first
  // segment's selection (rate 1).
  Layout layout =
      Padded({"holes", 2, 256, 2, {64, 128}, {1, 2}}, {{0, 256}, {0, 200}});
  layout.mask[256 + 10] = 1;
  const Call call(layout);
  ASSERT_TRUE(call.params().ok()) << call.params().status();
  const absl::StatusOr<std::vector<FlashProblem>> problems =
      FlashProblemsOf(*call.params());
  EXPECT_EQ(problems.status().code(), absl::StatusCode::kUnimplemented)
      << problems.status();
}

}  // namespace
}  // namespace dilated
