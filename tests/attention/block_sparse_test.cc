// "block_sparse" on every test device against the dense masked float64
// oracle (tests/testing/masked_oracle.h) with the layout expanded to a token
// mask: every pattern and custom layouts (shared and per head, rows with no
// key), causal and not, three dtypes, key padding; forward output, lse and
// the three gradients; on CUDA a layout of long rows (the head_dim 64
// forward's other tile); packed sequences (cu_seqlens) against the oracle of
// each sequence alone. Then the refusals, the probabilities of the debugging
// output, and that inactive blocks are never read.

#include "attention/block_sparse.h"

#include <omp.h>

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "attention/block_layout.h"
#include "attention/registry.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/attention_run.h"
#include "tests/testing/compare.h"
#include "tests/testing/masked_oracle.h"
#include "tests/testing/test_device.h"
#include "tests/testing/test_tensor.h"

namespace dilated {
namespace {

using testing::AllClose;
using testing::AttentionInputs;
using testing::AttentionResults;
using ::testing::HasSubstr;
using testing::MaskedProblem;
using testing::TestDevice;

struct Case {
  std::string label;
  int64_t batch;
  int64_t seq_len;
  int64_t num_heads;
  int64_t head_dim;
  BlockSparseConfig sparse;
  bool holes = false;  // Key padding at random positions.
  testing::Layout layout = testing::Layout::kContiguous;
};

BlockSparseConfig Pattern(BlockPattern pattern, int64_t block_size) {
  BlockSparseConfig config;
  config.pattern = pattern;
  config.block_size = block_size;
  return config;
}

// A [heads, nb, nb] layout with `density` (about 1/2 by default) from a
// fixed seed, and query block 1 of head 0 with no key block at all.
BlockLayout RandomLayout(int64_t heads, int64_t num_blocks, unsigned seed,
                         double density = 0.5) {
  std::mt19937 rng(seed);
  std::bernoulli_distribution active(density);
  BlockLayout layout{heads, num_blocks,
                     std::vector<uint8_t>(heads * num_blocks * num_blocks)};
  for (uint8_t& a : layout.active) a = active(rng);
  for (int64_t j = 0; j < num_blocks; ++j) layout.active[num_blocks + j] = 0;
  return layout;
}

std::vector<Case> Cases() {
  BlockSparseConfig local = Pattern(BlockPattern::kLocalWindow, 8);
  local.window = 24;
  BlockSparseConfig dilated = Pattern(BlockPattern::kDilatedSparse, 4);
  BlockSparseConfig global = Pattern(BlockPattern::kGlobalLocal, 16);
  global.window = 16;
  global.global_tokens = 20;
  BlockSparseConfig hierarchical = Pattern(BlockPattern::kHierarchical, 8);
  hierarchical.hierarchical_levels = {{16, 16}, {32, -1}};
  BlockSparseConfig per_head = Pattern(BlockPattern::kCustom, 5);
  per_head.custom_layout = RandomLayout(2, 6, 7);
  BlockSparseConfig shared = Pattern(BlockPattern::kCustom, 64);
  shared.custom_layout = RandomLayout(1, 4, 11);
  shared.custom_layout.active[0] = 1;
  Case holes{"local_window_holes", 2, 64, 2, 16, local, true};
  // Blocks of more than 64 tokens, not a multiple of 16: several sub-tiles
  // per block pair, the last one partial.
  BlockSparseConfig wide = Pattern(BlockPattern::kLocalWindow, 80);
  wide.window = 160;
  Case wide_holes{"local_window_block80_holes", 1, 240, 2, 8, wide, true};
  Case strided{"dilated_sparse_strided", 2, 48, 3, 8, dilated};
  strided.layout = testing::Layout::kPadded;
  // Blocks of 128 and 256 tokens: on CUDA, float16 and bfloat16 run on the
  // fused tensor-core kernels (every tile shape: head_dim 32, 64, 80 padded
  // to 128, 128 and 256).
  BlockSparseConfig local128 = Pattern(BlockPattern::kLocalWindow, 128);
  local128.window = 384;
  BlockSparseConfig dilated256 = Pattern(BlockPattern::kDilatedSparse, 256);
  BlockSparseConfig global128 = Pattern(BlockPattern::kGlobalLocal, 128);
  global128.window = 128;
  global128.global_tokens = 128;
  BlockSparseConfig per_head128 = Pattern(BlockPattern::kCustom, 128);
  per_head128.custom_layout = RandomLayout(2, 4, 13);
  return {
      {"local_window_block128", 2, 640, 2, 64, local128},
      {"dilated_sparse_block256_dim32", 1, 1024, 2, 32, dilated256},
      {"global_local_block128_dim256", 1, 512, 1, 256, global128},
      {"custom_per_head_block128_dim128", 1, 512, 2, 128, per_head128},
      {"custom_per_head_block128_dim80", 1, 512, 2, 80, per_head128},
      {"local_window", 1, 64, 2, 16, local},
      {"dilated_sparse", 1, 48, 3, 8, dilated},
      {"global_local", 1, 128, 2, 32, global},
      {"hierarchical_dim24", 1, 64, 1, 24, hierarchical},
      {"custom_per_head_block5", 1, 30, 2, 12, per_head},
      {"custom_shared_block64", 2, 256, 2, 64, shared},
      holes,
      wide_holes,
      strided,
  };
}

std::vector<uint8_t> Holes(const Case& c) {
  if (!c.holes) return {};
  return testing::RandomPadding(c.batch * c.seq_len, 5);
}

// The oracle's token mask: key p' counts for row p when their blocks are
// active, p' <= p under causal, and neither is padding.
MaskedProblem OracleFor(const Case& c, const BlockLayout& layout, bool causal,
                        const std::vector<uint8_t>& padding) {
  MaskedProblem p;
  p.batch = c.batch;
  p.seq_len = c.seq_len;
  p.num_heads = c.num_heads;
  p.head_dim = c.head_dim;
  p.softmax_scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
  const int64_t bs = c.sparse.block_size;
  const int64_t n = c.seq_len;
  p.key_weights.assign(c.batch * c.num_heads * n * n, 0.0);
  for (int64_t b = 0; b < c.batch; ++b) {
    for (int64_t h = 0; h < c.num_heads; ++h) {
      for (int64_t row = 0; row < n; ++row) {
        for (int64_t key = 0; key < n; ++key) {
          const bool active =
              layout.IsActive(layout.heads == 1 ? 0 : h, row / bs, key / bs);
          const bool padded = !padding.empty() &&
                              (padding[b * n + row] || padding[b * n + key]);
          if (active && !padded && (!causal || key <= row)) {
            p.key_weights[((b * c.num_heads + h) * n + row) * n + key] = 1.0;
          }
        }
      }
    }
  }
  return p;
}

AttentionInputs Inputs(const Case& c, DType dtype, bool causal) {
  AttentionInputs in = testing::RandomInputs(
      {c.batch, c.seq_len, c.num_heads, c.head_dim}, dtype, causal, 1);
  in.key_padding_mask = Holes(c);
  return in;
}

struct Param {
  Case c;
  DType dtype;
  bool causal;
  TestDevice* device;
};

// Rows of about 28 key blocks of 128 at head_dim 64: on Hopper in 16-bit
// dtypes the forward runs the tile of long rows (kernels/cuda/
// flash_configs.cuh, SparseRowsAreLong), under the causal mask (14 counted)
// the tile of short ones. CUDA only: the float64 oracle of 4096 tokens takes
// seconds.
Case LongRowsCase() {
  BlockSparseConfig long_rows = Pattern(BlockPattern::kCustom, 128);
  long_rows.custom_layout = RandomLayout(1, 32, 17, /*density=*/0.9);
  return {"custom_long_rows_block128", 1, 4096, 1, 64, long_rows};
}

std::vector<Param> AllParams() {
  std::vector<Param> params;
  for (TestDevice* device : testing::TestDevices()) {
    for (const Case& c : Cases()) {
      for (DType dtype : {DType::kFloat32, DType::kFloat16, DType::kBFloat16}) {
        for (bool causal : {false, true}) {
          params.push_back({c, dtype, causal, device});
        }
      }
    }
    if (device->device().type == DeviceType::kCuda) {
      for (DType dtype : {DType::kFloat16, DType::kBFloat16}) {
        for (bool causal : {false, true}) {
          params.push_back({LongRowsCase(), dtype, causal, device});
        }
      }
    }
  }
  return params;
}

std::string ParamName(const ::testing::TestParamInfo<Param>& info) {
  const Param& p = info.param;
  std::string name = absl::StrCat(p.c.label, "_", DTypeName(p.dtype),
                                  p.causal ? "_causal_" : "_full_",
                                  DeviceName(p.device->device()));
  name.erase(std::remove(name.begin(), name.end(), ':'), name.end());
  return name;
}

class BlockSparseConformanceTest : public ::testing::TestWithParam<Param> {};

TEST_P(BlockSparseConformanceTest, MatchesDenseMaskedOracle) {
  const Param& p = GetParam();
  AttentionConfig config;
  config.block_sparse = p.c.sparse;
  absl::StatusOr<std::unique_ptr<Attention>> attention =
      CreateAttention("block_sparse", config);
  ASSERT_TRUE(attention.ok()) << attention.status();
  const AttentionInputs in = Inputs(p.c, p.dtype, p.causal);
  const AttentionResults got =
      testing::RunAttention(**attention, p.device, p.dtype, p.c.layout, in);
  if (got.forward.code() == absl::StatusCode::kFailedPrecondition &&
      p.device->device().type != DeviceType::kCpu) {
    GTEST_SKIP() << got.forward;  // No device kernel in this build.
  }
  ASSERT_TRUE(got.forward.ok()) << got.forward;
  ASSERT_TRUE(got.backward.ok()) << got.backward;

  const absl::StatusOr<BlockLayout> layout =
      BuildBlockLayout(p.c.sparse, p.c.seq_len, p.c.num_heads);
  ASSERT_TRUE(layout.ok()) << layout.status();
  const MaskedProblem oracle =
      OracleFor(p.c, *layout, p.causal, in.key_padding_mask);
  testing::ExpectedResults want;
  testing::MaskedForward(oracle, in.q, in.k, in.v, &want.out, &want.lse);
  testing::MaskedBackward(oracle, in.q, in.k, in.v, in.grad_out, &want.grad_q,
                          &want.grad_k, &want.grad_v);
  testing::ExpectResultsMatch(got, want, p.dtype);
}

INSTANTIATE_TEST_SUITE_P(EveryPattern, BlockSparseConformanceTest,
                         ::testing::ValuesIn(AllParams()), ParamName);

std::unique_ptr<Attention> Create(const BlockSparseConfig& sparse) {
  AttentionConfig config;
  config.block_sparse = sparse;
  absl::StatusOr<std::unique_ptr<Attention>> attention =
      CreateAttention("block_sparse", config);
  EXPECT_TRUE(attention.ok()) << attention.status();
  return attention.ok() ? *std::move(attention) : nullptr;
}

// A custom layout of 4 x 4 blocks of `block_size` tokens in which key block 2
// is active for no query block.
BlockSparseConfig LayoutWithUnusedKeyBlock(int64_t block_size) {
  BlockSparseConfig sparse = Pattern(BlockPattern::kCustom, block_size);
  sparse.custom_layout = {1,
                          4,
                          {1, 0, 0, 0,  //
                           1, 1, 0, 0,  //
                           0, 1, 0, 1,  //
                           1, 0, 0, 1}};
  return sparse;
}

TEST(BlockSparseTest, InactiveBlocksAreNeverRead) {
  // Key block 2 is active for no query block: its k and v rows are NaN.
  const BlockSparseConfig sparse = LayoutWithUnusedKeyBlock(4);
  const Case c{"nan_block", 1, 16, 2, 8, sparse};
  AttentionInputs in = Inputs(c, DType::kFloat32, false);
  for (int64_t n = 8; n < 12; ++n) {
    for (int64_t a = 0; a < 2 * 8; ++a) {
      in.k[n * 16 + a] = std::numeric_limits<double>::quiet_NaN();
      in.v[n * 16 + a] = std::numeric_limits<double>::quiet_NaN();
    }
  }
  std::unique_ptr<Attention> attention = Create(sparse);
  const AttentionResults got =
      testing::RunAttention(*attention, testing::TestDevices()[0],
                            DType::kFloat32, testing::Layout::kContiguous, in);
  ASSERT_TRUE(got.forward.ok()) << got.forward;
  const MaskedProblem oracle =
      OracleFor(c, sparse.custom_layout, false, in.key_padding_mask);
  std::vector<double> out, lse;
  testing::MaskedForward(oracle, in.q, in.k, in.v, &out, &lse);
  EXPECT_TRUE(
      AllClose(got.out, out, testing::OutputTolerance(DType::kFloat32)));
}

// The same on every device, float16 with blocks of 128 (the fused kernels on
// CUDA), forward and backward: no output or gradient picks up a NaN.
TEST(BlockSparseTest, InactiveBlocksAreNeverReadInBlocksOf128) {
  const BlockSparseConfig sparse = LayoutWithUnusedKeyBlock(128);
  const Case c{"nan_block128", 1, 512, 2, 64, sparse};
  AttentionInputs in = Inputs(c, DType::kFloat16, false);
  const int64_t row = 2 * 64;  // heads * head_dim
  for (int64_t n = 256; n < 384; ++n) {
    for (int64_t a = 0; a < row; ++a) {
      in.k[n * row + a] = std::numeric_limits<double>::quiet_NaN();
      in.v[n * row + a] = std::numeric_limits<double>::quiet_NaN();
    }
  }
  std::unique_ptr<Attention> attention = Create(sparse);
  const MaskedProblem oracle =
      OracleFor(c, sparse.custom_layout, false, in.key_padding_mask);
  std::vector<double> out, lse;
  testing::MaskedForward(oracle, in.q, in.k, in.v, &out, &lse);
  for (TestDevice* device : testing::TestDevices()) {
    SCOPED_TRACE(DeviceName(device->device()));
    const AttentionResults got = testing::RunAttention(
        *attention, device, DType::kFloat16, testing::Layout::kContiguous, in);
    ASSERT_TRUE(got.forward.ok()) << got.forward;
    ASSERT_TRUE(got.backward.ok()) << got.backward;
    EXPECT_TRUE(
        AllClose(got.out, out, testing::OutputTolerance(DType::kFloat16)));
    for (const std::vector<double>* grad :
         {&got.grad_q, &got.grad_k, &got.grad_v}) {
      for (int64_t n = 0; n < c.seq_len; ++n) {
        // Rows of the NaN block get no gradient flowing back: exactly 0.
        for (int64_t a = 0; a < row; ++a) {
          const double value = (*grad)[n * row + a];
          ASSERT_FALSE(std::isnan(value)) << "row " << n;
          if (grad != &got.grad_q && n >= 256 && n < 384) {
            ASSERT_EQ(value, 0.0) << "row " << n;
          }
        }
      }
    }
  }
}

// One writer per gradient element, adding in a fixed order: the results are
// the same bits with one thread as with three.
TEST(BlockSparseTest, ResultsDoNotDependOnTheThreadCount) {
  BlockSparseConfig sparse = Pattern(BlockPattern::kLocalWindow, 80);
  sparse.window = 160;
  const Case c{"threads", 2, 240, 3, 8, sparse, true};
  const AttentionInputs in = Inputs(c, DType::kFloat32, true);
  std::unique_ptr<Attention> attention = Create(sparse);
  const int threads = omp_get_max_threads();
  std::vector<AttentionResults> got;
  for (int count : {1, 3}) {
    omp_set_num_threads(count);
    got.push_back(testing::RunAttention(*attention, testing::TestDevices()[0],
                                        DType::kFloat32,
                                        testing::Layout::kContiguous, in));
    ASSERT_TRUE(got.back().forward.ok()) << got.back().forward;
    ASSERT_TRUE(got.back().backward.ok()) << got.back().backward;
  }
  omp_set_num_threads(threads);
  EXPECT_EQ(got[0].out, got[1].out);
  EXPECT_EQ(got[0].lse, got[1].lse);
  EXPECT_EQ(got[0].grad_q, got[1].grad_q);
  EXPECT_EQ(got[0].grad_k, got[1].grad_k);
  EXPECT_EQ(got[0].grad_v, got[1].grad_v);
}

TEST(BlockSparseTest, OneObjectServesSeveralSequenceLengths) {
  BlockSparseConfig sparse = Pattern(BlockPattern::kLocalWindow, 8);
  sparse.window = 24;
  std::unique_ptr<Attention> attention = Create(sparse);
  for (int64_t seq_len : {64, 32, 64}) {
    const Case c{"lengths", 1, seq_len, 2, 8, sparse};
    const AttentionInputs in = Inputs(c, DType::kFloat32, true);
    const AttentionResults got = testing::RunAttention(
        *attention, testing::TestDevices()[0], DType::kFloat32,
        testing::Layout::kContiguous, in);
    ASSERT_TRUE(got.forward.ok()) << got.forward;
    const absl::StatusOr<BlockLayout> layout =
        BuildBlockLayout(sparse, seq_len, 2);
    ASSERT_TRUE(layout.ok());
    std::vector<double> out, lse;
    testing::MaskedForward(OracleFor(c, *layout, true, {}), in.q, in.k, in.v,
                           &out, &lse);
    EXPECT_TRUE(
        AllClose(got.out, out, testing::OutputTolerance(DType::kFloat32)))
        << seq_len;
  }
}

TEST(BlockSparseTest, ProbabilitiesAreTheRowSoftmaxOverActiveBlocks) {
  BlockSparseConfig sparse = Pattern(BlockPattern::kCustom, 4);
  sparse.custom_layout = RandomLayout(2, 3, 3);
  const Case c{"probabilities", 2, 12, 2, 8, sparse};
  const AttentionInputs in = Inputs(c, DType::kFloat32, true);
  AttentionConfig config;
  config.block_sparse = sparse;
  BlockSparseAttention attention(config);
  testing::TestDevice* cpu = testing::TestDevices()[0];
  const std::vector<int64_t> shape = in.shape;
  testing::TestTensor q(cpu, DType::kFloat32, shape);
  testing::TestTensor k(cpu, DType::kFloat32, shape);
  testing::TestTensor v(cpu, DType::kFloat32, shape);
  testing::TestTensor out(cpu, DType::kFloat32, shape);
  testing::TestTensor lse(cpu, DType::kFloat32, {2, 2, 12});
  q.Upload(in.q);
  k.Upload(in.k);
  v.Upload(in.v);
  ForwardOptions options;
  options.is_causal = true;
  ASSERT_TRUE(attention
                  .Forward(q.view(), k.view(), v.view(), out.view(), options,
                           &lse.view())
                  .ok());
  const absl::StatusOr<BlockProbabilities> probabilities =
      attention.Probabilities(q.view(), k.view(), lse.view(), options);
  ASSERT_TRUE(probabilities.ok()) << probabilities.status();
  EXPECT_EQ(probabilities->block_size, 4);
  EXPECT_EQ(probabilities->num_blocks, 3);

  // The oracle's probabilities: the weights out = P v uses, recovered by
  // giving v the one-hot rows of each key.
  const MaskedProblem oracle = OracleFor(c, sparse.custom_layout, true, {});
  std::vector<double> row_sums(2 * 2 * 12, 0.0);
  for (size_t e = 0; e < probabilities->blocks.size(); ++e) {
    const auto [i, j] = probabilities->blocks[e];
    for (int64_t b = 0; b < 2; ++b) {
      for (int64_t h = 0; h < 2; ++h) {
        for (int64_t r = 0; r < 4; ++r) {
          const int64_t query = i * 4 + r;
          double max = -INFINITY;
          std::vector<double> scores(12, -INFINITY);
          for (int64_t key = 0; key < 12; ++key) {
            if (oracle.KeyWeight(b, h, query, key) == 0) continue;
            double dot = 0;
            for (int64_t a = 0; a < 8; ++a) {
              dot += in.q[((b * 12 + query) * 2 + h) * 8 + a] *
                     in.k[((b * 12 + key) * 2 + h) * 8 + a];
            }
            scores[key] = dot * oracle.softmax_scale;
            max = std::max(max, scores[key]);
          }
          double sum = 0;
          for (double s : scores) sum += s == -INFINITY ? 0 : std::exp(s - max);
          for (int64_t col = 0; col < 4; ++col) {
            const int64_t key = j * 4 + col;
            const double expected = scores[key] == -INFINITY
                                        ? 0
                                        : std::exp(scores[key] - max) / sum;
            const float got =
                probabilities
                    ->values[(((e * 2 + b) * 2 + h) * 4 + r) * 4 + col];
            // float32 scores and exp against float64, probabilities <= 1.
            EXPECT_NEAR(got, expected, 1e-5)
                << "block (" << i << ", " << j << ") b " << b << " h " << h
                << " row " << r << " col " << col;
            row_sums[(b * 2 + h) * 12 + query] += got;
          }
        }
      }
    }
  }
  // One softmax per row: a row with keys sums to 1 over all its blocks.
  for (int64_t b = 0; b < 2; ++b) {
    for (int64_t h = 0; h < 2; ++h) {
      for (int64_t query = 0; query < 12; ++query) {
        bool has_key = false;
        for (int64_t key = 0; key < 12; ++key) {
          has_key = has_key || oracle.KeyWeight(b, h, query, key) > 0;
        }
        // A sum of at most 12 float32 probabilities.
        EXPECT_NEAR(row_sums[(b * 2 + h) * 12 + query], has_key ? 1.0 : 0.0,
                    1e-5);
      }
    }
  }
}

AttentionResults RunOnCpu(const BlockSparseConfig& sparse, int64_t seq_len,
                          int64_t num_heads) {
  std::unique_ptr<Attention> attention = Create(sparse);
  const Case c{"bad", 1, seq_len, num_heads, 8, sparse};
  return testing::RunAttention(*attention, testing::TestDevices()[0],
                               DType::kFloat32, testing::Layout::kContiguous,
                               Inputs(c, DType::kFloat32, false));
}

TEST(BlockSparseValidationTest, SequenceNotAMultipleOfTheBlockSize) {
  const AttentionResults got =
      RunOnCpu(Pattern(BlockPattern::kDilatedSparse, 8), 30, 2);
  EXPECT_EQ(got.forward.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      std::string(got.forward.message()),
      HasSubstr("sequence length 30 must be a multiple of block_size 8"));
}

TEST(BlockSparseValidationTest, CustomLayoutOfTheWrongShape) {
  BlockSparseConfig sparse = Pattern(BlockPattern::kCustom, 4);
  sparse.custom_layout = RandomLayout(3, 4, 1);
  AttentionResults got = RunOnCpu(sparse, 16, 2);
  EXPECT_EQ(got.forward.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(got.forward.message()),
              HasSubstr("custom_layout has 3 heads"));
  got = RunOnCpu(sparse, 20, 3);
  EXPECT_EQ(got.forward.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(got.forward.message()),
              HasSubstr("custom_layout has 4 blocks per row"));
  sparse.custom_layout.active.pop_back();
  AttentionConfig config;
  config.block_sparse = sparse;
  const auto attention = CreateAttention("block_sparse", config);
  EXPECT_EQ(attention.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(attention.status().message()),
              HasSubstr("block layout [3, 4, 4] needs 48 entries, got 47"));
}

TEST(BlockSparseValidationTest, WindowSmallerThanABlockAtCreation) {
  AttentionConfig config;
  config.block_sparse = Pattern(BlockPattern::kLocalWindow, 128);
  config.block_sparse.window = 64;
  const auto attention = CreateAttention("block_sparse", config);
  EXPECT_EQ(attention.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(attention.status().message()),
              HasSubstr("window 64 is smaller than a block (block_size 128)"));
}

// The rows start .. start + length - 1 of a [total, heads, head_dim] tensor
// (`row` values per position).
std::vector<double> Rows(const std::vector<double>& x, int64_t start,
                         int64_t length, int64_t row) {
  return std::vector<double>(x.begin() + start * row,
                             x.begin() + (start + length) * row);
}

struct PackedRun {
  absl::Status forward;
  absl::Status backward;
  std::vector<double> q, k, v, grad_out;  // Inputs.
  std::vector<double> out, lse, grad_q, grad_k, grad_v;
};

// Runs a packed call of sequences of `lengths` rows ([total, heads, dim]
// tensors, lse [heads, total]) on `device`, with cu_seqlens in host memory
// or (`offsets_on_device`) in the device's.
PackedRun RunPacked(const BlockSparseConfig& sparse,
                    const std::vector<int32_t>& offsets, int64_t heads,
                    int64_t dim, DType dtype, bool causal,
                    TestDevice* device = testing::TestDevices()[0],
                    bool offsets_on_device = false) {
  std::unique_ptr<Attention> attention = Create(sparse);
  const int64_t total = offsets.back();
  const std::vector<int64_t> shape = {total, heads, dim};
  testing::TestTensor q(device, dtype, shape), k(device, dtype, shape),
      v(device, dtype, shape), out(device, dtype, shape),
      grad_out(device, dtype, shape), grad_q(device, dtype, shape),
      grad_k(device, dtype, shape), grad_v(device, dtype, shape);
  testing::TestTensor lse(device, DType::kFloat32, {heads, total});
  const testing::DeviceBytes device_offsets(device, offsets.data(),
                                            offsets.size() * sizeof(int32_t));
  PackedRun run;
  const AttentionInputs in =
      testing::RandomInputs({1, total, heads, dim}, dtype, causal, 1);
  run.q = in.q;
  run.k = in.k;
  run.v = in.v;
  run.grad_out = in.grad_out;
  q.Upload(run.q);
  k.Upload(run.k);
  v.Upload(run.v);
  grad_out.Upload(run.grad_out);
  ForwardOptions options;
  options.is_causal = causal;
  options.cu_seqlens = TensorView::Contiguous(
      offsets_on_device ? device_offsets.data()
                        : const_cast<int32_t*>(offsets.data()),
      DType::kInt32, {static_cast<int64_t>(offsets.size())},
      offsets_on_device ? device->device() : Device::Cpu());
  run.forward = attention->Forward(q.view(), k.view(), v.view(), out.view(),
                                   options, &lse.view());
  if (!run.forward.ok()) return run;
  run.backward = attention->Backward(q.view(), k.view(), v.view(), out.view(),
                                     lse.view(), grad_out.view(), grad_q.view(),
                                     grad_k.view(), grad_v.view(), options);
  run.out = out.Download();
  run.lse = lse.Download();
  run.grad_q = grad_q.Download();
  run.grad_k = grad_k.Download();
  run.grad_v = grad_v.Download();
  return run;
}

struct PackedParam {
  DType dtype;
  bool causal;
  TestDevice* device;
  bool offsets_on_device;
  // Blocks of 128 tokens, head_dim 64 (on CUDA in 16-bit dtypes: the fused
  // kernels), else blocks of 8 and head_dim 8.
  bool wide;
};

std::vector<PackedParam> PackedParams() {
  std::vector<PackedParam> params;
  for (TestDevice* device : testing::TestDevices()) {
    const bool cpu = device->device().type == DeviceType::kCpu;
    for (bool wide : {false, true}) {
      for (const auto& [dtype, causal] :
           std::vector<std::pair<DType, bool>>{{DType::kFloat32, false},
                                               {DType::kFloat32, true},
                                               {DType::kFloat16, true},
                                               {DType::kBFloat16, false}}) {
        for (bool on_device : {false, true}) {
          if (cpu && on_device) continue;
          params.push_back({dtype, causal, device, on_device, wide});
        }
      }
    }
  }
  return params;
}

class BlockSparsePackedTest : public ::testing::TestWithParam<PackedParam> {};

// Every sequence of a packed call gets the layout of its own length from its
// own position 0: its rows equal the oracle of that sequence alone.
TEST_P(BlockSparsePackedTest, EverySequenceMatchesTheOracleAlone) {
  const PackedParam& p = GetParam();
  const int64_t bs = p.wide ? 128 : 8;
  BlockSparseConfig sparse = Pattern(BlockPattern::kLocalWindow, bs);
  sparse.window = 3 * bs;
  // An empty sequence, one block, and lengths whose layouts differ.
  std::vector<int32_t> offsets = {0, 2, 2, 7, 8};
  for (int32_t& offset : offsets) offset *= bs;
  const int64_t heads = 2;
  const int64_t dim = p.wide ? 64 : 8;
  const int64_t row = heads * dim;
  const int64_t total = offsets.back();
  const PackedRun run = RunPacked(sparse, offsets, heads, dim, p.dtype,
                                  p.causal, p.device, p.offsets_on_device);
  ASSERT_TRUE(run.forward.ok()) << run.forward;
  ASSERT_TRUE(run.backward.ok()) << run.backward;
  for (size_t i = 0; i + 1 < offsets.size(); ++i) {
    const int64_t start = offsets[i];
    const int64_t length = offsets[i + 1] - start;
    if (length == 0) continue;
    const Case c{"packed", 1, length, heads, dim, sparse};
    const absl::StatusOr<BlockLayout> layout =
        BuildBlockLayout(sparse, length, heads);
    ASSERT_TRUE(layout.ok()) << layout.status();
    const MaskedProblem oracle = OracleFor(c, *layout, p.causal, {});
    const std::vector<double> q = Rows(run.q, start, length, row);
    const std::vector<double> k = Rows(run.k, start, length, row);
    const std::vector<double> v = Rows(run.v, start, length, row);
    const std::vector<double> grad_out = Rows(run.grad_out, start, length, row);
    std::vector<double> out, lse, grad_q, grad_k, grad_v;
    testing::MaskedForward(oracle, q, k, v, &out, &lse);
    testing::MaskedBackward(oracle, q, k, v, grad_out, &grad_q, &grad_k,
                            &grad_v);
    std::vector<double> got_lse;
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t n = 0; n < length; ++n) {
        got_lse.push_back(run.lse[h * total + start + n]);
      }
    }
    EXPECT_TRUE(AllClose(Rows(run.out, start, length, row), out,
                         testing::OutputTolerance(p.dtype)))
        << "out of sequence " << i;
    // float32 whatever the storage type: scores of inputs exact in every
    // dtype.
    EXPECT_TRUE(AllClose(got_lse, lse, {1e-4, 1e-4}))
        << "lse of sequence " << i;
    const testing::Tolerance tolerance = testing::GradientTolerance(p.dtype);
    EXPECT_TRUE(
        AllClose(Rows(run.grad_q, start, length, row), grad_q, tolerance))
        << "grad_q of sequence " << i;
    EXPECT_TRUE(
        AllClose(Rows(run.grad_k, start, length, row), grad_k, tolerance))
        << "grad_k of sequence " << i;
    EXPECT_TRUE(
        AllClose(Rows(run.grad_v, start, length, row), grad_v, tolerance))
        << "grad_v of sequence " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Dtypes, BlockSparsePackedTest, ::testing::ValuesIn(PackedParams()),
    [](const ::testing::TestParamInfo<PackedParam>& info) {
      const PackedParam& p = info.param;
      std::string name = absl::StrCat(
          DTypeName(p.dtype), p.causal ? "_causal" : "_full",
          p.wide ? "_block128_" : "_block8_", DeviceName(p.device->device()),
          p.offsets_on_device ? "_offsets_on_device" : "");
      name.erase(std::remove(name.begin(), name.end(), ':'), name.end());
      return name;
    });

TEST(BlockSparseValidationTest, PackedSequenceNotAMultipleOfTheBlockSize) {
  const PackedRun run = RunPacked(Pattern(BlockPattern::kDilatedSparse, 8),
                                  {0, 16, 28}, 2, 8, DType::kFloat32, false);
  EXPECT_EQ(run.forward.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(run.forward.message()),
              HasSubstr("cu_seqlens: sequence 1 has 12 tokens"));
  EXPECT_THAT(std::string(run.forward.message()), HasSubstr("block_size 8"));
}

TEST(BlockSparseValidationTest,
     PackedSequenceOfTheWrongLengthForACustomLayout) {
  BlockSparseConfig sparse = Pattern(BlockPattern::kCustom, 4);
  sparse.custom_layout = RandomLayout(1, 4, 1);
  const PackedRun run =
      RunPacked(sparse, {0, 16, 24}, 2, 8, DType::kFloat32, false);
  EXPECT_EQ(run.forward.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(run.forward.message()),
              HasSubstr("cu_seqlens: sequence 1: custom_layout has 4 blocks "
                        "per row but the sequence of 8 tokens has 2 blocks"));
}

}  // namespace
}  // namespace dilated
