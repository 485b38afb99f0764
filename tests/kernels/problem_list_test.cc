// The problems of a call, worked out by hand for small cases: partial
// segments, padding at the ends of a sequence (trimmed strided problems),
// padding between kept positions (row lists) and packed sequences.

#include "kernels/problem_list.h"

#include <cstdint>
#include <vector>

#include "gtest/gtest.h"

namespace dilated {
namespace kernels {
namespace {

// One group: segment 8, rate 2, offset 1, all heads; sequences of `seq_len`.
ForwardParams OneGroup(int64_t batch, int64_t seq_len) {
  ForwardParams p{};
  p.batch = batch;
  p.seq_len = seq_len;
  p.sequence.max_seq_len = seq_len;
  p.num_groups = 1;
  p.groups[0] = GroupParams{0, 2, 8, 2, 1, 4};
  return p;
}

// Returns the positions of every problem, one list per problem.
std::vector<std::vector<int64_t>> Rows(const ProblemList& list) {
  std::vector<std::vector<int64_t>> rows;
  for (const Problem& problem : list.problems()) {
    rows.emplace_back();
    for (int64_t j = 0; j < problem.length; ++j) {
      rows.back().push_back(problem.Position(j));
    }
  }
  return rows;
}

TEST(ProblemListTest, PartialLastSegment) {
  // n = 14: segments [0, 8) and [8, 14); the second selects 9, 11, 13.
  const ProblemList list(OneGroup(1, 14));
  ASSERT_EQ(list.problems().size(), 2u);
  EXPECT_EQ(Rows(list),
            (std::vector<std::vector<int64_t>>{{1, 3, 5, 7}, {9, 11, 13}}));
  EXPECT_EQ(list.problems()[1].segment_begin, 8);
  EXPECT_EQ(list.problems()[1].segment_end, 14);
  EXPECT_EQ(list.max_length(), 4);
}

TEST(ProblemListTest, PaddingAtTheEndsTrimsStridedProblems) {
  ForwardParams p = OneGroup(1, 16);
  // Unpadded: positions 2 .. 11.
  std::vector<uint8_t> mask(16, 1);
  for (int n = 2; n < 12; ++n) mask[n] = 0;
  p.sequence.key_padding_mask = mask.data();
  p.sequence.mask_stride_b = 16;
  const ProblemList list(p);
  EXPECT_EQ(Rows(list),
            (std::vector<std::vector<int64_t>>{{3, 5, 7}, {9, 11}}));
  for (const Problem& problem : list.problems()) {
    EXPECT_EQ(problem.rows, nullptr);
  }
}

TEST(ProblemListTest, PaddingBetweenKeptPositionsListsRows) {
  ForwardParams p = OneGroup(2, 8);
  std::vector<uint8_t> mask(16, 0);
  mask[3] = 1;      // Sequence 0: a hole at 3, between 1 and 5.
  mask[8 + 7] = 1;  // Sequence 1: padding at the end only.
  p.sequence.key_padding_mask = mask.data();
  p.sequence.mask_stride_b = 8;
  const ProblemList list(p);
  EXPECT_EQ(Rows(list),
            (std::vector<std::vector<int64_t>>{{1, 5, 7}, {1, 3, 5}}));
  EXPECT_NE(list.problems()[0].rows, nullptr);
  EXPECT_EQ(list.problems()[1].rows, nullptr);
}

TEST(ProblemListTest, FullyPaddedSequenceHasEmptyProblems) {
  ForwardParams p = OneGroup(1, 8);
  std::vector<uint8_t> mask(8, 1);
  p.sequence.key_padding_mask = mask.data();
  p.sequence.mask_stride_b = 8;
  const ProblemList list(p);
  ASSERT_EQ(list.problems().size(), 1u);
  EXPECT_EQ(list.problems()[0].length, 0);
}

TEST(ProblemListTest, PackedSequencesStartTheirOwnSegments) {
  ForwardParams p = OneGroup(3, 16);
  const int32_t offsets[] = {0, 5, 5, 16};
  p.sequence.cu_seqlens = offsets;
  const ProblemList list(p);
  // Sequence 0 (5 rows): 1, 3; sequence 1: none; sequence 2 (11 rows):
  // 1, 3, 5, 7 and 9.
  ASSERT_EQ(list.problems().size(), 3u);
  EXPECT_EQ(Rows(list),
            (std::vector<std::vector<int64_t>>{{1, 3}, {1, 3, 5, 7}, {9}}));
  EXPECT_EQ(list.problems()[0].row_base, 0);
  EXPECT_EQ(list.problems()[1].row_base, 5);
  EXPECT_EQ(list.problems()[2].b, 2);
}

}  // namespace
}  // namespace kernels
}  // namespace dilated
