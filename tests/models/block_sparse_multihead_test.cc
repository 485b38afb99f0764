// BlockSparseMultiheadAttention: the Python module's parameter names, a state
// dict loaded by name, and its forward pass against projections and a dense
// masked float64 attention computed here.

#include <cmath>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/block_sparse_multihead_attention.h"
#include "models/state_dict.h"
#include "tests/testing/masked_oracle.h"

namespace dilated {
namespace models {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int64_t kEmbed = 8;
constexpr int64_t kHeads = 2;
constexpr int64_t kSeq = 12;

BlockSparseMultiheadConfig Config() {
  BlockSparseMultiheadConfig config;
  config.embed_dim = kEmbed;
  config.num_heads = kHeads;
  config.sparse.pattern = BlockPattern::kLocalWindow;
  config.sparse.block_size = 4;
  config.sparse.window = 4;  // The diagonal blocks only.
  return config;
}

TEST(BlockSparseMultiheadTest, HasThePythonModulesParameterNames) {
  auto module = BlockSparseMultiheadAttention::Create(Config());
  ASSERT_TRUE(module.ok()) << module.status();
  std::vector<std::string> names;
  for (const NamedParameter& p : (*module)->Parameters()) {
    names.push_back(p.name);
    EXPECT_EQ(p.parameter->shape.back(), kEmbed) << p.name;
  }
  EXPECT_THAT(names,
              ElementsAre("q_proj.weight", "q_proj.bias", "k_proj.weight",
                          "k_proj.bias", "v_proj.weight", "v_proj.bias",
                          "out_proj.weight", "out_proj.bias"));
}

// y = x W^T + b in float64, x [rows, kEmbed].
std::vector<double> Project(const std::vector<double>& x,
                            const Parameter& weight, const Parameter& bias) {
  std::vector<double> y;
  for (size_t row = 0; row < x.size() / kEmbed; ++row) {
    for (int64_t o = 0; o < kEmbed; ++o) {
      double sum = bias.values[o];
      for (int64_t i = 0; i < kEmbed; ++i) {
        sum += x[row * kEmbed + i] * weight.values[o * kEmbed + i];
      }
      y.push_back(sum);
    }
  }
  return y;
}

TEST(BlockSparseMultiheadTest, LoadedStateDictGivesProjectedBlockAttention) {
  auto module = BlockSparseMultiheadAttention::Create(Config());
  ASSERT_TRUE(module.ok()) << module.status();
  ParameterMap state;
  int seed = 1;
  for (const char* name : {"q_proj", "k_proj", "v_proj", "out_proj"}) {
    Parameter weight{{kEmbed, kEmbed}, {}};
    Parameter bias{{kEmbed}, {}};
    for (int64_t i = 0; i < kEmbed * kEmbed; ++i) {
      weight.values.push_back(0.4f * std::sin(0.7f * i + seed));
    }
    for (int64_t i = 0; i < kEmbed; ++i) {
      bias.values.push_back(0.1f * std::cos(1.3f * i + seed));
    }
    ++seed;
    state.Set(std::string(name) + ".weight", weight);
    state.Set(std::string(name) + ".bias", bias);
  }
  ASSERT_TRUE(LoadStateDict(state, module->get()).ok());

  std::vector<float> x(kSeq * kEmbed);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.29 * i);
  const Tensor input = Tensor::FromFloat32({1, kSeq, kEmbed}, x);
  ForwardOptions options;
  options.is_causal = true;
  absl::StatusOr<Tensor> y = (*module)->Forward(input, input, input, options);
  ASSERT_TRUE(y.ok()) << y.status();

  const std::vector<double> xd(x.begin(), x.end());
  auto param = [&](const std::string& name) { return *state.Find(name); };
  const std::vector<double> q =
      Project(xd, param("q_proj.weight"), param("q_proj.bias"));
  const std::vector<double> k =
      Project(xd, param("k_proj.weight"), param("k_proj.bias"));
  const std::vector<double> v =
      Project(xd, param("v_proj.weight"), param("v_proj.bias"));
  testing::MaskedProblem oracle;
  oracle.seq_len = kSeq;
  oracle.num_heads = kHeads;
  oracle.head_dim = kEmbed / kHeads;
  oracle.softmax_scale = 0.5;  // 1 / sqrt(head_dim 4).
  for (int64_t h = 0; h < kHeads; ++h) {
    for (int64_t row = 0; row < kSeq; ++row) {
      for (int64_t key = 0; key < kSeq; ++key) {
        oracle.key_weights.push_back(row / 4 == key / 4 && key <= row);
      }
    }
  }
  std::vector<double> attended, lse;
  testing::MaskedForward(oracle, q, k, v, &attended, &lse);
  const std::vector<double> expected =
      Project(attended, param("out_proj.weight"), param("out_proj.bias"));
  const std::vector<float> got = y->ToFloat32();
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    // Three float32 GEMMs and a float32 attention.
    EXPECT_NEAR(got[i], expected[i], 1e-5) << i;
  }
}

TEST(BlockSparseMultiheadTest, RejectsBadConfigsAndInputs) {
  BlockSparseMultiheadConfig config = Config();
  config.num_heads = 3;
  EXPECT_THAT(
      std::string(
          BlockSparseMultiheadAttention::Create(config).status().message()),
      HasSubstr("embed_dim (8) must be divisible by num_heads (3)"));
  auto module = BlockSparseMultiheadAttention::Create(Config());
  ASSERT_TRUE(module.ok());
  const Tensor x = Tensor::Zeros(DType::kFloat32, {1, 10, kEmbed});
  const absl::StatusOr<Tensor> y = (*module)->Forward(x, x, x, {});
  EXPECT_EQ(y.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      std::string(y.status().message()),
      HasSubstr("sequence length 10 must be a multiple of block_size 4"));
  const Tensor wide = Tensor::Zeros(DType::kFloat32, {1, 12, 6});
  EXPECT_THAT(
      std::string((*module)->Forward(wide, wide, wide, {}).status().message()),
      HasSubstr("query must be [batch, seq, embed_dim = 8]"));
}

}  // namespace
}  // namespace models
}  // namespace dilated
