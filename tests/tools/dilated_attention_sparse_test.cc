// Runs the dilated_attention binary with --impl=block_sparse (patterns from
// flags, a custom layout from the input file) and --impl=longnet, forward and
// backward, against the dense masked float64 oracle; and its one-line errors
// for bad block-sparse settings.

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "io/safetensors.h"
#include "tests/testing/masked_oracle.h"
#include "tests/tools/tool_runner.h"

namespace dilated {
namespace {

using tools_testing::TempPath;
using tools_testing::ToolResult;

constexpr char kBinary[] = "tools/dilated_attention";
constexpr int64_t kHeads = 2;
constexpr int64_t kDim = 8;

ToolResult RunTool(const std::vector<std::string>& args) {
  return tools_testing::RunTool(kBinary, args);
}

void ExpectOneLineError(const ToolResult& result,
                        const std::vector<std::string>& parts) {
  tools_testing::ExpectOneLineError(result, "dilated_attention", parts);
}

struct Input {
  std::string path;
  int64_t seq_len;
  std::vector<float> q, k, v, grad_out;
};

// Writes q, k, v, grad_out [1, seq_len, 2, 8] float32 and, when not empty,
// block_layout (U8, `layout_shape`).
Input WriteInput(const std::string& name, int64_t seq_len,
                 const std::vector<uint8_t>& layout,
                 const std::vector<int64_t>& layout_shape) {
  Input in{TempPath(name + ".safetensors"), seq_len};
  const int64_t count = seq_len * kHeads * kDim;
  for (int64_t i = 0; i < count; ++i) {
    in.q.push_back(2.0 * std::sin(0.37 * i));
    in.k.push_back(2.0 * std::cos(0.21 * i));
    in.v.push_back(std::sin(0.05 * i + 1.0));
    in.grad_out.push_back(std::cos(0.11 * i + 0.5));
  }
  const std::vector<int64_t> shape = {1, seq_len, kHeads, kDim};
  std::vector<io::NamedTensor> tensors = {
      {"q", io::SafetensorsDType::kF32, shape, in.q.data()},
      {"k", io::SafetensorsDType::kF32, shape, in.k.data()},
      {"v", io::SafetensorsDType::kF32, shape, in.v.data()},
      {"grad_out", io::SafetensorsDType::kF32, shape, in.grad_out.data()}};
  if (!layout.empty()) {
    tensors.push_back({"block_layout", io::SafetensorsDType::kU8, layout_shape,
                       layout.data()});
  }
  EXPECT_TRUE(io::WriteSafetensors(in.path, tensors).ok());
  return in;
}

// The oracle over `weight(h, row, key)`.
template <typename Weight>
testing::MaskedProblem Oracle(int64_t seq_len, Weight weight) {
  testing::MaskedProblem p;
  p.seq_len = seq_len;
  p.num_heads = kHeads;
  p.head_dim = kDim;
  p.softmax_scale = 1.0 / std::sqrt(double(kDim));
  for (int64_t h = 0; h < kHeads; ++h) {
    for (int64_t row = 0; row < seq_len; ++row) {
      for (int64_t key = 0; key < seq_len; ++key) {
        p.key_weights.push_back(weight(h, row, key));
      }
    }
  }
  return p;
}

std::vector<double> Doubles(const std::vector<float>& x) {
  return std::vector<double>(x.begin(), x.end());
}

// Runs the tool with --backward and compares out and the gradients with the
// oracle (float32 kernels against float64: a few float32 roundings).
void ExpectToolMatches(const Input& in, const testing::MaskedProblem& oracle,
                       std::vector<std::string> args) {
  const std::string output = TempPath("sparse_out.safetensors");
  args.insert(args.end(),
              {"--input=" + in.path, "--output=" + output, "--backward"});
  const ToolResult result = RunTool(args);
  ASSERT_EQ(result.exit_code, 0) << result.error;
  absl::StatusOr<io::SafetensorsFile> written = io::ReadSafetensors(output);
  ASSERT_TRUE(written.ok()) << written.status();
  std::vector<double> out, lse, grad_q, grad_k, grad_v;
  testing::MaskedForward(oracle, Doubles(in.q), Doubles(in.k), Doubles(in.v),
                         &out, &lse);
  testing::MaskedBackward(oracle, Doubles(in.q), Doubles(in.k), Doubles(in.v),
                          Doubles(in.grad_out), &grad_q, &grad_k, &grad_v);
  const std::vector<std::pair<const char*, const std::vector<double>*>>
      expected = {{"out", &out},
                  {"grad_q", &grad_q},
                  {"grad_k", &grad_k},
                  {"grad_v", &grad_v}};
  for (const auto& [name, values] : expected) {
    absl::StatusOr<const io::SafetensorsTensor*> got = written->Find(name);
    ASSERT_TRUE(got.ok()) << got.status();
    const std::vector<double> actual = (*got)->ToDoubles();
    ASSERT_EQ(actual.size(), values->size()) << name;
    for (size_t i = 0; i < actual.size(); ++i) {
      ASSERT_NEAR(actual[i], (*values)[i], 1e-4) << name << " at " << i;
    }
  }
}

TEST(DilatedAttentionSparseToolTest, BlockSparseLocalWindowFromFlags) {
  const Input in = WriteInput("local", 24, {}, {});
  // Blocks of 4, window 12: key blocks within one block of the query's.
  const auto weight = [](int64_t, int64_t row, int64_t key) {
    return std::abs(row / 4 - key / 4) <= 1 && key <= row ? 1.0 : 0.0;
  };
  ExpectToolMatches(in, Oracle(24, weight),
                    {"--impl=block_sparse", "--block_size=4",
                     "--pattern=local_window", "--window=12", "--is_causal"});
}

TEST(DilatedAttentionSparseToolTest, BlockSparseCustomLayoutFromTheInput) {
  // Per head: head 0 the lower triangle of blocks, head 1 the first column
  // and the diagonal.
  const std::vector<uint8_t> layout = {1, 0, 0, 1, 1, 0, 1, 1, 1,
                                       1, 0, 0, 1, 1, 0, 1, 0, 1};
  const Input in = WriteInput("custom", 12, layout, {2, 3, 3});
  const auto weight = [&](int64_t h, int64_t row, int64_t key) {
    return layout[(h * 3 + row / 4) * 3 + key / 4] ? 1.0 : 0.0;
  };
  ExpectToolMatches(
      in, Oracle(12, weight),
      {"--impl=block_sparse", "--block_size=4", "--pattern=custom"});
}

TEST(DilatedAttentionSparseToolTest, LongNetCountsKeysOfEveryBranch) {
  // Rate 1 everywhere: every head has offset 0, and a key in the query's
  // segment of 4 counts once for each branch (4 and 8).
  const Input in = WriteInput("longnet", 16, {}, {});
  const auto weight = [](int64_t, int64_t row, int64_t key) {
    return double(row / 4 == key / 4) + double(row / 8 == key / 8);
  };
  ExpectToolMatches(
      in, Oracle(16, weight),
      {"--impl=longnet", "--segment_lengths=4,8", "--dilation_rates=1,1"});
}

std::vector<std::string> SparseArgs(const Input& in) {
  return {"--impl=block_sparse", "--block_size=4", "--input=" + in.path,
          "--output=" + TempPath("unused.safetensors")};
}

TEST(DilatedAttentionSparseToolTest, RejectsBadBlockSparseSettings) {
  const Input in = WriteInput("bad", 12, {}, {});
  std::vector<std::string> args = SparseArgs(in);
  args.push_back("--pattern=strided");
  ExpectOneLineError(RunTool(args), {"INVALID_ARGUMENT",
                                     "unknown block-sparse pattern 'strided'"});
  args = SparseArgs(in);
  args[1] = "--block_size=8";
  ExpectOneLineError(RunTool(args),
                     {"INVALID_ARGUMENT",
                      "sequence length 12 must be a multiple of block_size 8"});
  args = SparseArgs(in);
  args.insert(args.end(), {"--pattern=local_window", "--window=2"});
  ExpectOneLineError(RunTool(args),
                     {"INVALID_ARGUMENT", "window 2 is smaller than a block"});
  args = SparseArgs(in);
  args.push_back("--pattern=custom");
  ExpectOneLineError(RunTool(args), {"INVALID_ARGUMENT", "'block_layout'"});
}

TEST(DilatedAttentionSparseToolTest, RejectsABlockLayoutOfTheWrongShape) {
  const Input not_square =
      WriteInput("not_square", 12, std::vector<uint8_t>(6, 1), {2, 3});
  std::vector<std::string> args = SparseArgs(not_square);
  args.push_back("--pattern=custom");
  ExpectOneLineError(RunTool(args), {"INVALID_ARGUMENT", "[2, 3]"});
  const Input wrong_blocks =
      WriteInput("wrong_blocks", 12, std::vector<uint8_t>(16, 1), {4, 4});
  args = SparseArgs(wrong_blocks);
  args.push_back("--pattern=custom");
  ExpectOneLineError(RunTool(args), {"INVALID_ARGUMENT",
                                     "custom_layout has 4 blocks per row"});
}

}  // namespace
}  // namespace dilated
