// The multihead modules: configuration and input validation, the attention
// core chosen by factory name, the module factory, and properties that hold
// whatever the weights (the fused and separate projections compute the same
// attention; the attention mixes sequence positions).

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "attention/registry.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/attention_core.h"
#include "models/fused_multihead_dilated_attention.h"
#include "models/multihead_dilated_attention.h"
#include "models/registry.h"
#include "models/state_dict.h"
#include "tests/models/model_test_util.h"
#include "tests/testing/compare.h"

namespace dilated {
namespace models {
namespace {

using ::dilated::models::testing::RandomTensor;
using ::dilated::models::testing::ToDoubles;
using ::dilated::testing::AllClose;
using ::testing::Contains;
using ::testing::HasSubstr;

MultiheadConfig SmallConfig() {
  MultiheadConfig config;
  config.embed_dim = 16;
  config.num_heads = 4;
  config.segment_lengths = {4, 8};
  config.dilation_rates = {1, 2};
  config.seed = 5;
  return config;
}

struct ConfigCase {
  std::string name;
  void (*mutate)(MultiheadConfig*);
  std::string message;
};

class MultiheadConfigTest : public ::testing::TestWithParam<ConfigCase> {};

TEST_P(MultiheadConfigTest, RejectsWithAMessageNamingTheValue) {
  MultiheadConfig config = SmallConfig();
  GetParam().mutate(&config);
  for (const char* name :
       {"multihead_standard", "multihead_improved", "multihead_auto"}) {
    const auto module = CreateMultiheadAttention(name, config);
    EXPECT_EQ(module.status().code(), absl::StatusCode::kInvalidArgument)
        << name;
    EXPECT_THAT(module.status().message(), HasSubstr(GetParam().message))
        << name;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Fields, MultiheadConfigTest,
    ::testing::Values(
        ConfigCase{"EmbedDim", [](MultiheadConfig* c) { c->embed_dim = 0; },
                   "embed_dim must be positive, got 0"},
        ConfigCase{"NumHeads", [](MultiheadConfig* c) { c->num_heads = -2; },
                   "num_heads must be positive, got -2"},
        ConfigCase{"Divisible", [](MultiheadConfig* c) { c->num_heads = 3; },
                   "embed_dim (16) must be divisible by num_heads (3)"},
        ConfigCase{"Eps", [](MultiheadConfig* c) { c->layer_norm_eps = 0; },
                   "layer_norm_eps must be positive and finite, got 0"},
        ConfigCase{"Gamma", [](MultiheadConfig* c) { c->gamma_init = -1; },
                   "gamma_init must be positive and finite, got -1"},
        ConfigCase{"Lengths",
                   [](MultiheadConfig* c) { c->dilation_rates = {1}; },
                   "segment_lengths and dilation_rates must have the same "
                   "length: 2 != 1"},
        ConfigCase{"Segment",
                   [](MultiheadConfig* c) {
                     c->segment_lengths = {4, 0};
                   },
                   "segment_lengths[1] must be positive, got 0"},
        ConfigCase{"HeadsVsGroups",
                   [](MultiheadConfig* c) {
                     c->embed_dim = 8;
                     c->num_heads = 1;
                   },
                   "num_heads (1) must be >= num_groups (2"}),
    [](const ::testing::TestParamInfo<ConfigCase>& info) {
      return info.param.name;
    });

TEST(MultiheadFactoryTest, RegistersTheReferenceNames) {
  const std::vector<std::string> names = RegisteredMultiheadNames();
  EXPECT_THAT(names, Contains("multihead_standard"));
  EXPECT_THAT(names, Contains("multihead_improved"));
  EXPECT_THAT(names, Contains("multihead_auto"));
}

TEST(MultiheadFactoryTest, UnknownNameIsNotFoundAndListsTheNames) {
  const auto module = CreateMultiheadAttention("multihead_ring", SmallConfig());
  EXPECT_EQ(module.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(module.status().message(), HasSubstr("multihead_standard"));
}

TEST(MultiheadFactoryTest, FusedModuleHasNoUpstreamVariant) {
  MultiheadConfig config = SmallConfig();
  config.variant = MultiheadVariant::kUpstream;
  const auto module = CreateMultiheadAttention("multihead_improved", config);
  EXPECT_EQ(module.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(module.status().message(), HasSubstr("variant"));
}

TEST(AttentionCoreTest, DefaultIsImprovedWhenRegisteredElseStandard) {
  const std::vector<std::string> names = RegisteredAttentionNames();
  const bool has_improved =
      std::find(names.begin(), names.end(), "improved") != names.end();
  EXPECT_EQ(DefaultAttentionCoreName(), has_improved ? "improved" : "standard");
  for (const char* name : {"multihead_standard", "multihead_improved"}) {
    auto module = CreateMultiheadAttention(name, SmallConfig());
    ASSERT_TRUE(module.ok()) << module.status();
    EXPECT_EQ((*module)->attention_core(), DefaultAttentionCoreName()) << name;
  }
}

TEST(AttentionCoreTest, AutoModuleUsesTheAutoCoreUnlessOneIsNamed) {
  MultiheadConfig config = SmallConfig();
  auto automatic = CreateMultiheadAttention("multihead_auto", config);
  ASSERT_TRUE(automatic.ok()) << automatic.status();
  EXPECT_EQ((*automatic)->attention_core(), "auto");
  config.attention_core = "standard";
  auto named = CreateMultiheadAttention("multihead_auto", config);
  ASSERT_TRUE(named.ok()) << named.status();
  EXPECT_EQ((*named)->attention_core(), "standard");
}

TEST(AttentionCoreTest, UnknownCoreIsNotFound) {
  MultiheadConfig config = SmallConfig();
  config.attention_core = "no_such_core";
  const auto module = CreateMultiheadAttention("multihead_standard", config);
  EXPECT_EQ(module.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(module.status().message(), HasSubstr("no_such_core"));
}

class MultiheadForwardErrorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto module = CreateMultiheadAttention("multihead_standard", SmallConfig());
    ASSERT_TRUE(module.ok()) << module.status();
    module_ = std::move(*module);
  }

  absl::Status Run(const Tensor& q, const Tensor& k, const Tensor& v) {
    return module_->Forward(q, k, v, /*is_causal=*/false).status();
  }

  std::unique_ptr<MultiheadAttention> module_;
  Tensor good_ = RandomTensor(DType::kFloat32, {2, 8, 16}, 1);
};

TEST_F(MultiheadForwardErrorTest, RankIsChecked) {
  const Tensor flat = RandomTensor(DType::kFloat32, {16, 16}, 2);
  const absl::Status status = Run(good_, flat, good_);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              HasSubstr("key must be a 3-D tensor [batch, seq_len, "
                        "embed_dim]; got shapes query=[2, 8, 16], key=[16, "
                        "16], value=[2, 8, 16]"));
}

TEST_F(MultiheadForwardErrorTest, BatchAndSequenceMustMatch) {
  const Tensor shorter = RandomTensor(DType::kFloat32, {2, 4, 16}, 3);
  const absl::Status status = Run(good_, good_, shorter);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("value=[2, 4, 16] (value differs)"));
}

TEST_F(MultiheadForwardErrorTest, EmbeddingDimensionIsChecked) {
  const Tensor wide = RandomTensor(DType::kFloat32, {2, 8, 32}, 4);
  const absl::Status status = Run(wide, wide, wide);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              HasSubstr("query's embedding dimension (32) doesn't match "
                        "embed_dim (16)"));
}

TEST_F(MultiheadForwardErrorTest, DtypesMustMatch) {
  const Tensor half = RandomTensor(DType::kFloat16, {2, 8, 16}, 5);
  const absl::Status status = Run(good_, half, good_);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              HasSubstr("key.dtype is float16 but query.dtype is float32"));
}

TEST_F(MultiheadForwardErrorTest, SequenceMustDivideEverySegment) {
  const Tensor odd = RandomTensor(DType::kFloat32, {2, 12, 16}, 6);
  const absl::Status status = Run(odd, odd, odd);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              HasSubstr("sequence length 12 (query.shape[1]) is not divisible "
                        "by segment_lengths[1] = 8"));
}

TEST_F(MultiheadForwardErrorTest, EmptyBatchIsRejected) {
  const Tensor empty = Tensor::Zeros(DType::kFloat32, {0, 8, 16});
  EXPECT_EQ(Run(empty, empty, empty).code(),
            absl::StatusCode::kInvalidArgument);
}

// Copies the q/k/v projections of `separate` into the fused qkv_proj.
void CopyIntoFused(Module* separate, Module* fused) {
  ParameterMap from = ExportStateDict(separate);
  ParameterMap to = ExportStateDict(fused);
  for (const char* part : {"weight", "bias"}) {
    std::vector<float> stacked;
    for (const char* proj : {"q_proj.", "k_proj.", "v_proj."}) {
      const std::vector<float>& v = from.Find(std::string(proj) + part)->values;
      stacked.insert(stacked.end(), v.begin(), v.end());
    }
    to.FindMutable(std::string("qkv_proj.") + part)->values = stacked;
    *to.FindMutable(std::string("out_proj.") + part) =
        *from.Find(std::string("out_proj.") + part);
  }
  ASSERT_TRUE(LoadStateDict(to, fused).ok());
}

// float32 through two GEMMs and a softmax of width <= 8.
constexpr ::dilated::testing::Tolerance kFloat32{1e-5, 1e-4};

TEST(MultiheadPropertyTest, FusedAndSeparateProjectionsAgree) {
  MultiheadConfig config = SmallConfig();
  config.layer_norm = false;  // The fused module has no QK-LayerNorm.
  auto separate = MultiheadDilatedAttention::Create(config);
  config.seed = 99;
  auto fused = FusedMultiheadDilatedAttention::Create(config);
  ASSERT_TRUE(separate.ok() && fused.ok());
  CopyIntoFused(separate->get(), fused->get());
  const Tensor x = RandomTensor(DType::kFloat32, {2, 8, 16}, 7);
  const Tensor memory = RandomTensor(DType::kFloat32, {2, 8, 16}, 8);
  for (bool causal : {false, true}) {
    auto a = (*separate)->Forward(x, causal);
    auto b = (*fused)->Forward(x, causal);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_TRUE(AllClose(ToDoubles(*b), ToDoubles(*a), kFloat32));
    auto c = (*separate)->Forward(x, memory, memory, causal);
    auto d = (*fused)->Forward(x, memory, memory, causal);
    ASSERT_TRUE(c.ok() && d.ok());
    EXPECT_TRUE(AllClose(ToDoubles(*d), ToDoubles(*c), kFloat32));
  }
}

TEST(MultiheadPropertyTest, FusedSelfAndCrossPathsAgreeOnEqualInputs) {
  auto fused = FusedMultiheadDilatedAttention::Create(SmallConfig());
  ASSERT_TRUE(fused.ok());
  const Tensor x = RandomTensor(DType::kFloat32, {1, 8, 16}, 9);
  const Tensor copy = x;
  auto self = (*fused)->Forward(x, x, x, true);
  auto cross = (*fused)->Forward(x, copy, copy, true);
  ASSERT_TRUE(self.ok() && cross.ok());
  EXPECT_TRUE(AllClose(ToDoubles(*cross), ToDoubles(*self), kFloat32));
}

// With one head per group, attention across heads (the reference's
// ImprovedDilatedAttention defect, docs/REFERENCE.md §5) would make each
// position's output depend on that position alone. Changing another position of
// the same segment must change the output here.
TEST(MultiheadPropertyTest, FusedAttentionMixesSequencePositions) {
  MultiheadConfig config = SmallConfig();
  config.num_heads = 2;  // One head in each of the two groups.
  auto fused = FusedMultiheadDilatedAttention::Create(config);
  ASSERT_TRUE(fused.ok());
  const Tensor x = RandomTensor(DType::kFloat32, {1, 8, 16}, 10);
  Tensor changed = x;
  changed.MutableFloat32()[2 * 16 + 3] += 1.0f;  // Position 2.
  auto a = (*fused)->Forward(x, false);
  auto b = (*fused)->Forward(changed, false);
  ASSERT_TRUE(a.ok() && b.ok());
  double largest = 0.0;
  for (int c = 0; c < 16; ++c) {  // Position 0, same segment of group 0.
    largest =
        std::max<double>(largest, std::abs(a->Float32()[c] - b->Float32()[c]));
  }
  EXPECT_GT(largest, 1e-3);
}

}  // namespace
}  // namespace models
}  // namespace dilated
