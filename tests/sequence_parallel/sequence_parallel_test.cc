// "distributed" and "ring" on 2 and 4 MPI ranks (run by mpi_cc_test): every
// rank computes its shard of forward and backward, which must equal the
// float64 oracle's rows of the whole sequence, for every dtype, causal or
// not, with segments inside the shards, spanning whole shards (blocks of
// equal size) and straddling shard boundaries unevenly, with contiguous and
// zigzag shard placement. Also: the bytes each
// rank sends against the plan's arithmetic, and calls on which the ranks
// disagree or one rank fails, which must be errors on every rank.

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "attention/registry.h"
#include "distributed/call_agreement.h"
#include "distributed/communicator.h"
#include "distributed/mpi_communicator.h"
#include "distributed/shard_plan.h"
#include "gtest/gtest.h"
#include "tests/testing/compare.h"
#include "tests/testing/oracle.h"
#include "tests/testing/test_device.h"
#include "tests/testing/test_tensor.h"

namespace dilated {
namespace {

using distributed::Communicator;
using testing::AllClose;
using testing::OracleProblem;
using testing::RandomValues;
using testing::TestDevice;
using testing::TestTensor;

constexpr int64_t kBatch = 2;
constexpr int64_t kShardLen = 16;
constexpr int64_t kHeads = 5;
constexpr int64_t kHeadDim = 8;

Communicator& World() {
  static Communicator* const world = [] {
    distributed::MpiOptions options;
    options.timeout = absl::Seconds(60);
    absl::StatusOr<std::unique_ptr<Communicator>> comm =
        distributed::CreateMpiCommunicator(options);
    if (!comm.ok()) {
      ADD_FAILURE() << comm.status();
      std::abort();
    }
    return comm->release();
  }();
  return *world;
}

struct Geometry {
  std::string label;
  std::vector<int64_t> segment_lengths;
  std::vector<int64_t> dilation_rates;
};

// n = ranks * kShardLen.
std::vector<Geometry> Geometries(int64_t n) {
  return {
      // Every segment inside a shard: no communication.
      {"local", {8, 16}, {1, 2}},
      // Segments of 2 shards and of the whole sequence, rates dividing the
      // shard: every rank of a segment holds as many rows as the others.
      {"spanning", {32, n}, {2, 4}},
      // Segments that straddle shard boundaries, and a rate that does not
      // divide the shard: uneven runs of rows.
      {"straddling", {12, 20, n}, {1, 3, 5}},
  };
}

struct Param {
  std::string implementation;
  DType dtype;
  bool is_causal;
  int geometry;
  TestDevice* device;
  ShardPlacement placement = ShardPlacement::kContiguous;
};

std::string DTypeLabel(DType dtype) {
  switch (dtype) {
    case DType::kFloat16:
      return "f16";
    case DType::kBFloat16:
      return "bf16";
    default:
      return "f32";
  }
}

std::vector<Param> AllParams() {
  std::vector<Param> params;
  for (const char* name : {"distributed", "ring"}) {
    for (DType dtype : {DType::kFloat32, DType::kFloat16, DType::kBFloat16}) {
      for (bool causal : {false, true}) {
        for (int geometry = 0; geometry < 3; ++geometry) {
          for (TestDevice* device : testing::TestDevices()) {
            params.push_back({name, dtype, causal, geometry, device});
            if (dtype != DType::kFloat16) {
              params.push_back({name, dtype, causal, geometry, device,
                                ShardPlacement::kZigzag});
            }
          }
        }
      }
    }
  }
  return params;
}

std::string ParamName(const ::testing::TestParamInfo<Param>& info) {
  const Param& p = info.param;
  std::string device = DeviceName(p.device->device());
  device.erase(std::remove(device.begin(), device.end(), ':'), device.end());
  return absl::StrCat(
      p.implementation, "_", DTypeLabel(p.dtype),
      p.is_causal ? "_causal_" : "_full_", Geometries(0)[p.geometry].label,
      p.placement == ShardPlacement::kZigzag ? "_zigzag_" : "_", device);
}

// Returns this rank's shard (positions in the order of its pieces) of a
// [batch, n, heads, head_dim] tensor, or of a [batch, heads, n] lse when
// head_dim is 0.
std::vector<double> Shard(const std::vector<double>& whole, int64_t n,
                          const std::vector<distributed::ShardPiece>& pieces,
                          int64_t head_dim) {
  std::vector<double> part;
  if (head_dim == 0) {
    for (int64_t b = 0; b < kBatch; ++b)
      for (int64_t h = 0; h < kHeads; ++h)
        for (const distributed::ShardPiece& piece : pieces)
          for (int64_t i = piece.begin; i < piece.end; ++i)
            part.push_back(whole[(b * kHeads + h) * n + i]);
    return part;
  }
  const int64_t row = kHeads * head_dim;
  for (int64_t b = 0; b < kBatch; ++b) {
    for (const distributed::ShardPiece& piece : pieces) {
      const auto first = whole.begin() + (b * n + piece.begin) * row;
      part.insert(part.end(), first, first + (piece.end - piece.begin) * row);
    }
  }
  return part;
}

class SequenceParallelTest : public ::testing::TestWithParam<Param> {};

TEST_P(SequenceParallelTest, ShardsEqualTheOracle) {
  const Param& p = GetParam();
  Communicator& comm = World();
  const int64_t n = kShardLen * comm.size();
  const std::vector<distributed::ShardPiece> pieces = distributed::ShardPieces(
      p.placement, kShardLen, comm.rank(), comm.size());
  const auto shard = [&](const std::vector<double>& whole, int64_t head_dim) {
    return Shard(whole, n, pieces, head_dim);
  };
  const Geometry geometry = Geometries(n)[p.geometry];

  AttentionConfig config;
  config.segment_lengths = geometry.segment_lengths;
  config.dilation_rates = geometry.dilation_rates;
  config.communicator = &comm;
  config.shard_placement = p.placement;
  absl::StatusOr<std::unique_ptr<Attention>> attention =
      CreateAttention(p.implementation, config);
  ASSERT_TRUE(attention.ok()) << attention.status();

  OracleProblem problem;
  problem.batch = kBatch;
  problem.seq_len = n;
  problem.num_heads = kHeads;
  problem.head_dim = kHeadDim;
  problem.segment_lengths = geometry.segment_lengths;
  problem.dilation_rates = geometry.dilation_rates;
  problem.is_causal = p.is_causal;
  problem.softmax_scale = 1.0 / std::sqrt(static_cast<double>(kHeadDim));

  // The same inputs on every rank (same seed), each keeping its shard.
  std::mt19937 rng(1234 + p.geometry);
  const int64_t count = problem.NumElements();
  const std::vector<double> q = RandomValues(count, 1.0, p.dtype, &rng);
  const std::vector<double> k = RandomValues(count, 1.0, p.dtype, &rng);
  const std::vector<double> v = RandomValues(count, 1.0, p.dtype, &rng);
  const std::vector<double> grad_out = RandomValues(count, 1.0, p.dtype, &rng);

  const std::vector<int64_t> shape = {kBatch, kShardLen, kHeads, kHeadDim};
  TestTensor q_t(p.device, p.dtype, shape), k_t(p.device, p.dtype, shape),
      v_t(p.device, p.dtype, shape), out_t(p.device, p.dtype, shape),
      grad_out_t(p.device, p.dtype, shape), grad_q_t(p.device, p.dtype, shape),
      grad_k_t(p.device, p.dtype, shape), grad_v_t(p.device, p.dtype, shape),
      lse_t(p.device, DType::kFloat32, {kBatch, kHeads, kShardLen});
  q_t.Upload(shard(q, kHeadDim));
  k_t.Upload(shard(k, kHeadDim));
  v_t.Upload(shard(v, kHeadDim));
  grad_out_t.Upload(shard(grad_out, kHeadDim));

  ForwardOptions options;
  options.is_causal = p.is_causal;
  ASSERT_TRUE((*attention)
                  ->Forward(q_t.view(), k_t.view(), v_t.view(), out_t.view(),
                            options, &lse_t.view())
                  .ok());
  std::vector<double> out, lse;
  testing::OracleForward(problem, q, k, v, &out, &lse);
  EXPECT_TRUE(AllClose(out_t.Download(), shard(out, kHeadDim),
                       testing::OutputTolerance(p.dtype)))
      << "out, rank " << comm.rank();
  EXPECT_TRUE(AllClose(lse_t.Download(), shard(lse, 0),
                       testing::OutputTolerance(DType::kFloat32)))
      << "lse, rank " << comm.rank();

  const absl::Status backward =
      (*attention)
          ->Backward(q_t.view(), k_t.view(), v_t.view(), out_t.view(),
                     lse_t.view(), grad_out_t.view(), grad_q_t.view(),
                     grad_k_t.view(), grad_v_t.view(), options);
  ASSERT_TRUE(backward.ok()) << backward;
  std::vector<double> grad_q, grad_k, grad_v;
  testing::OracleBackward(problem, q, k, v, grad_out, &grad_q, &grad_k,
                          &grad_v);
  const testing::Tolerance tolerance = testing::GradientTolerance(p.dtype);
  EXPECT_TRUE(AllClose(grad_q_t.Download(), shard(grad_q, kHeadDim), tolerance))
      << "grad_q, rank " << comm.rank();
  EXPECT_TRUE(AllClose(grad_k_t.Download(), shard(grad_k, kHeadDim), tolerance))
      << "grad_k, rank " << comm.rank();
  EXPECT_TRUE(AllClose(grad_v_t.Download(), shard(grad_v, kHeadDim), tolerance))
      << "grad_v, rank " << comm.rank();
}

INSTANTIATE_TEST_SUITE_P(AllCases, SequenceParallelTest,
                         ::testing::ValuesIn(AllParams()), ParamName);

// A forward call on CPU float32 tensors of the given geometry; returns its
// status and the bytes this rank sent.
struct CallResult {
  absl::Status status;
  uint64_t bytes_sent;
};

CallResult RunForward(const std::string& name, const Geometry& geometry,
                      int64_t shard_len, DType out_dtype, bool is_causal) {
  Communicator& comm = World();
  AttentionConfig config;
  config.segment_lengths = geometry.segment_lengths;
  config.dilation_rates = geometry.dilation_rates;
  config.communicator = &comm;
  absl::StatusOr<std::unique_ptr<Attention>> attention =
      CreateAttention(name, config);
  if (!attention.ok()) return {attention.status(), 0};
  TestDevice* cpu = testing::TestDevices().front();
  const std::vector<int64_t> shape = {kBatch, shard_len, kHeads, kHeadDim};
  TestTensor q(cpu, DType::kFloat32, shape), k(cpu, DType::kFloat32, shape),
      v(cpu, DType::kFloat32, shape), out(cpu, out_dtype, shape);
  std::mt19937 rng(7);
  const int64_t count = kBatch * shard_len * kHeads * kHeadDim;
  q.Upload(RandomValues(count, 1.0, DType::kFloat32, &rng));
  k.Upload(RandomValues(count, 1.0, DType::kFloat32, &rng));
  v.Upload(RandomValues(count, 1.0, DType::kFloat32, &rng));
  ForwardOptions options;
  options.is_causal = is_causal;
  comm.ResetCounters();
  const absl::Status status =
      (*attention)->Forward(q.view(), k.view(), v.view(), out.view(), options);
  return {status, comm.bytes_sent()};
}

class SequenceParallelCallTest : public ::testing::TestWithParam<std::string> {
};

// Forward without a causal mask: every rank of a segment sends its selected
// K and V rows once to each other rank of it, all at once (all-gather) or
// one hop per step (ring): (ranks of the segment - 1) * rows * 2 tensors.
TEST_P(SequenceParallelCallTest, BytesSentFollowTheSegmentsRows) {
  Communicator& comm = World();
  const int64_t n = kShardLen * comm.size();
  const Geometry spanning = Geometries(n)[1];
  const CallResult result =
      RunForward(GetParam(), spanning, kShardLen, DType::kFloat32, false);
  ASSERT_TRUE(result.status.ok()) << result.status;
  // Heads per group: 5 heads over 2 groups.
  const int64_t group_heads[] = {3, 2};
  uint64_t expected = distributed::AgreementBytes() * (comm.size() - 1);
  for (int i = 0; i < 2; ++i) {
    const int64_t segment = std::min(spanning.segment_lengths[i], n);
    const int64_t ranks_per_segment = segment / kShardLen;
    const int64_t rows = kShardLen / spanning.dilation_rates[i];
    expected += (ranks_per_segment - 1) * rows * 2 * kBatch * group_heads[i] *
                kHeadDim * sizeof(float);
  }
  EXPECT_EQ(result.bytes_sent, expected) << "rank " << comm.rank();

  // Segments inside the shards need nothing but the agreement.
  const CallResult local = RunForward(GetParam(), Geometries(n)[0], kShardLen,
                                      DType::kFloat32, false);
  ASSERT_TRUE(local.status.ok()) << local.status;
  EXPECT_EQ(local.bytes_sent,
            distributed::AgreementBytes() * (comm.size() - 1));
}

TEST_P(SequenceParallelCallTest, MismatchedShapesFailOnEveryRank) {
  Communicator& comm = World();
  const int64_t n = kShardLen * comm.size();
  const int64_t shard_len = comm.rank() == 1 ? kShardLen / 2 : kShardLen;
  const CallResult result = RunForward(GetParam(), Geometries(n)[1], shard_len,
                                       DType::kFloat32, false);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kInvalidArgument)
      << result.status;
  EXPECT_NE(result.status.message().find("shard length"), std::string::npos)
      << result.status;
}

TEST_P(SequenceParallelCallTest, MismatchedSegmentsFailOnEveryRank) {
  Communicator& comm = World();
  const int64_t n = kShardLen * comm.size();
  Geometry geometry = Geometries(n)[1];
  if (comm.rank() == comm.size() - 1) geometry.segment_lengths[0] = 16;
  const CallResult result =
      RunForward(GetParam(), geometry, kShardLen, DType::kFloat32, false);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kInvalidArgument)
      << result.status;
  EXPECT_NE(result.status.message().find("segment_lengths"), std::string::npos)
      << result.status;
}

TEST_P(SequenceParallelCallTest, OneRanksBadInputFailsEveryRank) {
  Communicator& comm = World();
  const int64_t n = kShardLen * comm.size();
  // Rank 1's output has the wrong dtype: its own check fails.
  const DType out_dtype = comm.rank() == 1 ? DType::kFloat16 : DType::kFloat32;
  const CallResult result =
      RunForward(GetParam(), Geometries(n)[1], kShardLen, out_dtype, true);
  if (comm.rank() == 1) {
    EXPECT_EQ(result.status.code(), absl::StatusCode::kInvalidArgument)
        << result.status;
  } else {
    EXPECT_EQ(result.status.code(), absl::StatusCode::kFailedPrecondition)
        << result.status;
    EXPECT_NE(result.status.message().find("rank 1"), std::string::npos)
        << result.status;
  }
}

INSTANTIATE_TEST_SUITE_P(BothAlgorithms, SequenceParallelCallTest,
                         ::testing::Values("distributed", "ring"));

}  // namespace
}  // namespace dilated
