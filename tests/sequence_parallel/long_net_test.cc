// LongNet forward spread over 2 and 4 MPI ranks (run by mpi_cc_test): every
// rank's output for its shard of the sequence must equal the rows of the
// same model (same seed, so the same weights) run on the whole sequence in
// one process, with segments that stay inside a shard and segments that
// span shards, causal or not.

#include "models/long_net.h"

#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "distributed/communicator.h"
#include "distributed/mpi_communicator.h"
#include "gtest/gtest.h"
#include "models/tensor.h"

namespace dilated {
namespace {

constexpr int64_t kBatch = 2;
constexpr int64_t kShardLen = 16;
constexpr int64_t kDModel = 32;

distributed::Communicator& World() {
  static distributed::Communicator* const world = [] {
    distributed::MpiOptions options;
    options.timeout = absl::Seconds(60);
    absl::StatusOr<std::unique_ptr<distributed::Communicator>> comm =
        distributed::CreateMpiCommunicator(options);
    if (!comm.ok()) std::abort();
    return comm->release();
  }();
  return *world;
}

models::LongNetConfig SmallLongNet(int64_t n, const std::string& core) {
  models::LongNetConfig config;
  config.d_model = kDModel;
  config.nhead = 4;
  config.num_encoder_layers = 1;
  config.num_decoder_layers = 1;
  config.dim_feedforward = 64;
  // 8 stays inside a shard; 2 * kShardLen and n span shards.
  config.segment_lengths = {8, 2 * kShardLen, n};
  config.dilation_rates = {1, 2, 4};
  config.attention_core = core;
  config.seed = 42;
  return config;
}

struct Param {
  std::string core;
  bool is_causal;
};

class LongNetSequenceParallelTest : public ::testing::TestWithParam<Param> {};

TEST_P(LongNetSequenceParallelTest, ShardEqualsTheWholeSequencesRows) {
  distributed::Communicator& comm = World();
  const int64_t n = kShardLen * comm.size();
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> x(kBatch * n * kDModel);
  for (float& value : x) value = uniform(rng);

  absl::StatusOr<std::unique_ptr<models::LongNet>> whole_model =
      models::LongNet::Create(SmallLongNet(n, "improved"));
  ASSERT_TRUE(whole_model.ok()) << whole_model.status();
  absl::StatusOr<models::Tensor> whole =
      (*whole_model)
          ->Forward(models::Tensor::FromFloat32({kBatch, n, kDModel}, x),
                    GetParam().is_causal);
  ASSERT_TRUE(whole.ok()) << whole.status();

  models::LongNetConfig config = SmallLongNet(n, GetParam().core);
  config.communicator = &comm;
  absl::StatusOr<std::unique_ptr<models::LongNet>> shard_model =
      models::LongNet::Create(config);
  ASSERT_TRUE(shard_model.ok()) << shard_model.status();
  std::vector<float> shard_x;
  const int64_t begin = comm.rank() * kShardLen;
  for (int64_t b = 0; b < kBatch; ++b) {
    const auto first = x.begin() + (b * n + begin) * kDModel;
    shard_x.insert(shard_x.end(), first, first + kShardLen * kDModel);
  }
  absl::StatusOr<models::Tensor> shard =
      (*shard_model)
          ->Forward(models::Tensor::FromFloat32({kBatch, kShardLen, kDModel},
                                                shard_x),
                    GetParam().is_causal);
  ASSERT_TRUE(shard.ok()) << shard.status();

  const std::vector<float> expected = whole->ToFloat32();
  const std::vector<float> actual = shard->ToFloat32();
  ASSERT_EQ(actual.size(), shard_x.size());
  for (int64_t b = 0; b < kBatch; ++b) {
    for (int64_t i = 0; i < kShardLen * kDModel; ++i) {
      const float e = expected[(b * n + begin) * kDModel + i];
      const float a = actual[b * kShardLen * kDModel + i];
      // float32 through two layers; only the order of sums differs.
      ASSERT_NEAR(a, e, 1e-4f * (1.0f + std::abs(e)))
          << "rank " << comm.rank() << " batch " << b << " element " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    BothAlgorithms, LongNetSequenceParallelTest,
    ::testing::Values(Param{"distributed", false}, Param{"distributed", true},
                      Param{"ring", false}, Param{"ring", true}),
    [](const ::testing::TestParamInfo<Param>& info) {
      return absl::StrCat(info.param.core,
                          info.param.is_causal ? "_causal" : "_full");
    });

}  // namespace
}  // namespace dilated
