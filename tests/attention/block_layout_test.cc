// The block-layout builders against layouts written out by hand from their
// rules (docs/BLOCK_SPARSE.md), and every validation rule with its code and
// message.

#include "attention/block_layout.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dilated {
namespace {

using ::testing::HasSubstr;

// Renders a one-head layout as rows of '0' and '1'.
std::vector<std::string> Rows(const BlockLayout& layout, int64_t head = 0) {
  std::vector<std::string> rows;
  for (int64_t i = 0; i < layout.num_blocks; ++i) {
    std::string row;
    for (int64_t j = 0; j < layout.num_blocks; ++j) {
      row += layout.IsActive(head, i, j) ? '1' : '0';
    }
    rows.push_back(row);
  }
  return rows;
}

BlockSparseConfig Config(BlockPattern pattern, int64_t block_size) {
  BlockSparseConfig config;
  config.pattern = pattern;
  config.block_size = block_size;
  return config;
}

std::vector<std::string> Build(const BlockSparseConfig& config,
                               int64_t seq_len) {
  absl::StatusOr<BlockLayout> layout = BuildBlockLayout(config, seq_len, 2);
  EXPECT_TRUE(layout.ok()) << layout.status();
  if (!layout.ok()) return {};
  EXPECT_EQ(layout->heads, 1);
  return Rows(*layout);
}

TEST(BlockLayoutTest, LocalWindowHalfWidthIsHalfTheWindowInBlocks) {
  BlockSparseConfig config = Config(BlockPattern::kLocalWindow, 4);
  config.window = 12;  // 3 blocks: w' = 1.
  EXPECT_THAT(
      Build(config, 20),
      ::testing::ElementsAre("11000", "11100", "01110", "00111", "00011"));
  config.window = 4;  // One block: w' = 0, the diagonal.
  EXPECT_THAT(Build(config, 12), ::testing::ElementsAre("100", "010", "001"));
  config.window = 23;  // 5 whole blocks: w' = 2.
  EXPECT_THAT(Build(config, 24),
              ::testing::ElementsAre("111000", "111100", "111110", "011111",
                                     "001111", "000111"));
}

TEST(BlockLayoutTest, DilatedSparseUsesTheFirstThreeRatesInBlocks) {
  BlockSparseConfig config = Config(BlockPattern::kDilatedSparse, 2);
  config.sparse_dilation_rates = {1, 3};
  EXPECT_THAT(Build(config, 12),
              ::testing::ElementsAre("110100", "111010", "011101", "101110",
                                     "010111", "001011"));
  config.sparse_dilation_rates = {1, 2, 4, 8};  // 8 is not used.
  EXPECT_THAT(Build(config, 20),
              ::testing::ElementsAre("1110100000", "1111010000", "1111101000",
                                     "0111110100", "1011111010", "0101111101",
                                     "0010111110", "0001011111", "0000101111",
                                     "0000010111"));
}

TEST(BlockLayoutTest, GlobalLocalRoundsGlobalTokensUpToBlocks) {
  BlockSparseConfig config = Config(BlockPattern::kGlobalLocal, 4);
  config.window = 4;
  config.global_tokens = 5;  // Two global blocks.
  EXPECT_THAT(
      Build(config, 20),
      ::testing::ElementsAre("11111", "11111", "11100", "11010", "11001"));
  // 64 global tokens at block 128 make one global block (the Python library
  // rounds down to none).
  BlockSparseConfig reference_defaults =
      Config(BlockPattern::kGlobalLocal, 128);
  reference_defaults.window = 128;
  reference_defaults.global_tokens = 64;
  EXPECT_THAT(Build(reference_defaults, 384),
              ::testing::ElementsAre("111", "110", "101"));
  config.global_tokens = 0;
  EXPECT_THAT(Build(config, 12), ::testing::ElementsAre("100", "010", "001"));
}

TEST(BlockLayoutTest, HierarchicalIsTheUnionOfItsLevels) {
  // Default levels at block 64: every block sees 2 blocks each side (stride
  // 64, window 256); blocks 0 and 4 see 8 each side (stride 256, window
  // 1024); block 0 sees everything (stride 1024, global).
  BlockSparseConfig config = Config(BlockPattern::kHierarchical, 64);
  EXPECT_THAT(
      Build(config, 512),
      ::testing::ElementsAre("11111111", "11110000", "11111000", "01111100",
                             "11111111", "00011111", "00001111", "00000111"));
  config.hierarchical_levels = {{128, 64}};  // Stride 2 blocks, window 1.
  EXPECT_THAT(
      Build(config, 320),
      ::testing::ElementsAre("10000", "00000", "00100", "00000", "00001"));
}

TEST(BlockLayoutTest, CustomLayoutIsReturnedAsGiven) {
  BlockSparseConfig config = Config(BlockPattern::kCustom, 2);
  config.custom_layout = {2, 2, {1, 0, 1, 1, 0, 1, 0, 0}};
  absl::StatusOr<BlockLayout> layout = BuildBlockLayout(config, 4, 2);
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_THAT(Rows(*layout, 0), ::testing::ElementsAre("10", "11"));
  EXPECT_THAT(Rows(*layout, 1), ::testing::ElementsAre("01", "00"));
  EXPECT_EQ(layout->CountActive(), 4);
}

void ExpectInvalid(const absl::StatusOr<BlockLayout>& layout,
                   const std::string& message) {
  EXPECT_EQ(layout.status().code(), absl::StatusCode::kInvalidArgument)
      << layout.status();
  EXPECT_THAT(std::string(layout.status().message()), HasSubstr(message));
}

TEST(BlockLayoutValidationTest, SequenceMustBeAMultipleOfTheBlockSize) {
  ExpectInvalid(
      BuildBlockLayout(Config(BlockPattern::kDilatedSparse, 4), 10, 1),
      "sequence length 10 must be a multiple of block_size 4");
}

TEST(BlockLayoutValidationTest, WindowSmallerThanABlock) {
  for (BlockPattern pattern :
       {BlockPattern::kLocalWindow, BlockPattern::kGlobalLocal}) {
    BlockSparseConfig config = Config(pattern, 8);
    config.window = 7;
    ExpectInvalid(BuildBlockLayout(config, 16, 1),
                  "window 7 is smaller than a block (block_size 8)");
  }
}

TEST(BlockLayoutValidationTest, UnknownPatternIsNamed) {
  const absl::StatusOr<BlockPattern> pattern = ParseBlockPattern("strided");
  EXPECT_EQ(pattern.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(pattern.status().message()),
              HasSubstr("unknown block-sparse pattern 'strided'"));
  for (const char* name : {"local_window", "dilated_sparse", "global_local",
                           "hierarchical", "custom"}) {
    absl::StatusOr<BlockPattern> parsed = ParseBlockPattern(name);
    ASSERT_TRUE(parsed.ok()) << name;
    EXPECT_EQ(BlockPatternName(*parsed), std::string(name));
  }
}

TEST(BlockLayoutValidationTest, CustomLayoutOfTheWrongShape) {
  BlockSparseConfig config = Config(BlockPattern::kCustom, 2);
  config.custom_layout = {1, 3, std::vector<uint8_t>(8, 1)};
  ExpectInvalid(BuildBlockLayout(config, 6, 1),
                "block layout [1, 3, 3] needs 9 entries, got 8");
  config.custom_layout = {1, 3, std::vector<uint8_t>(9, 1)};
  ExpectInvalid(BuildBlockLayout(config, 8, 1),
                "custom_layout has 3 blocks per row but the sequence of 8 "
                "tokens has 4 blocks");
  config.custom_layout = {2, 3, std::vector<uint8_t>(18, 1)};
  ExpectInvalid(BuildBlockLayout(config, 6, 3),
                "custom_layout has 2 heads; it must have 1 or num_heads = 3");
}

TEST(BlockLayoutValidationTest, FieldsNameTheirValues) {
  BlockSparseConfig config = Config(BlockPattern::kDilatedSparse, 0);
  EXPECT_THAT(std::string(config.Validate().message()),
              HasSubstr("block_size must be positive, got 0"));
  config.block_size = 4;
  config.sparse_dilation_rates = {1, -2};
  EXPECT_THAT(std::string(config.Validate().message()),
              HasSubstr("sparse_dilation_rates[1] must be positive, got -2"));
  config = Config(BlockPattern::kGlobalLocal, 4);
  config.global_tokens = -1;
  EXPECT_THAT(std::string(config.Validate().message()),
              HasSubstr("global_tokens must be non-negative, got -1"));
}

}  // namespace
}  // namespace dilated
