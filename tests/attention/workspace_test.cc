// Workspace memory: every implementation takes its scratch from the call's
// allocator, gives all of it back, and computes the same result whether the
// memory is direct, pooled or passed in.

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "attention/registry.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "memory/default_allocator.h"
#include "memory/host_allocator.h"
#include "memory/tracking_allocator.h"

namespace dilated {
namespace {

using ::testing::HasSubstr;

struct Problem {
  static constexpr int64_t kBatch = 2, kSeq = 64, kHeads = 3, kDim = 16;
  Problem() {
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    for (std::vector<float>* t : {&q, &k, &v, &grad_out}) {
      t->resize(kBatch * kSeq * kHeads * kDim);
      for (float& x : *t) x = uniform(rng);
    }
  }
  TensorView View(std::vector<float>* t) {
    t->resize(kBatch * kSeq * kHeads * kDim);
    return TensorView::Contiguous(t->data(), DType::kFloat32,
                                  {kBatch, kSeq, kHeads, kDim});
  }
  // Runs forward and backward; returns out followed by grad_q.
  std::vector<float> Run(Attention& attention, const ForwardOptions& options) {
    std::vector<float> out, grad_q, grad_k, grad_v, lse(kBatch * kHeads * kSeq);
    const TensorView lse_view = TensorView::Contiguous(
        lse.data(), DType::kFloat32, {kBatch, kHeads, kSeq});
    EXPECT_TRUE(attention
                    .Forward(View(&q), View(&k), View(&v), View(&out), options,
                             &lse_view)
                    .ok());
    EXPECT_TRUE(attention
                    .Backward(View(&q), View(&k), View(&v), View(&out),
                              lse_view, View(&grad_out), View(&grad_q),
                              View(&grad_k), View(&grad_v), options)
                    .ok());
    out.insert(out.end(), grad_q.begin(), grad_q.end());
    return out;
  }
  std::vector<float> q, k, v, grad_out;
};

AttentionConfig Config(bool pool) {
  AttentionConfig config;
  config.segment_lengths = {16, 32, 64};
  config.dilation_rates = {1, 2, 4};
  config.enable_memory_pool = pool;
  return config;
}

class WorkspaceTest : public ::testing::TestWithParam<std::string> {};

TEST_P(WorkspaceTest, PassedAllocatorIsUsedAndNothingLeaks) {
  memory::HostAllocator host;
  memory::TrackingAllocator tracking(&host);
  std::unique_ptr<Attention> attention =
      *CreateAttention(GetParam(), Config(false));
  ForwardOptions options;
  options.workspace_allocator = &tracking;
  Problem problem;
  const std::vector<float> with_tracking = problem.Run(*attention, options);
  EXPECT_TRUE(tracking.CheckNoLeaks().ok()) << tracking.CheckNoLeaks();
  const std::vector<float> direct = problem.Run(*attention, ForwardOptions());
  EXPECT_EQ(with_tracking, direct);  // Same kernels, same memory contents.
}

TEST_P(WorkspaceTest, PoolGivesTheSameResultAsDirectAllocation) {
  Problem problem;
  std::unique_ptr<Attention> direct =
      *CreateAttention(GetParam(), Config(false));
  std::unique_ptr<Attention> pooled =
      *CreateAttention(GetParam(), Config(true));
  const std::vector<float> expected = problem.Run(*direct, ForwardOptions());
  EXPECT_EQ(problem.Run(*pooled, ForwardOptions()), expected);
  EXPECT_EQ(problem.Run(*pooled, ForwardOptions()), expected);  // Reused.
}

INSTANTIATE_TEST_SUITE_P(AllImplementations, WorkspaceTest,
                         ::testing::ValuesIn(DilatedAttentionNames()));

TEST(Workspace, StandardTakesItsScratchFromTheAllocator) {
  memory::HostAllocator host;
  memory::TrackingAllocator tracking(&host);
  std::unique_ptr<Attention> attention =
      *CreateAttention("standard", Config(false));
  ForwardOptions options;
  options.workspace_allocator = &tracking;
  Problem problem;
  problem.Run(*attention, options);
  EXPECT_GE(tracking.GetStats().allocation_count, 2);  // Forward + backward.
  EXPECT_GT(tracking.GetStats().peak_bytes_in_use, 0);
}

TEST(Workspace, AllocatorOnAnotherDeviceIsRejected) {
  std::unique_ptr<Attention> attention =
      *CreateAttention("standard", Config(false));
  Problem problem;
  // A device-space allocator used with CPU tensors: rejected before any use.
  class FakeDeviceAllocator : public memory::Allocator {
   public:
    FakeDeviceAllocator() : Allocator(Device::Cuda(0), 256, "fake") {}

   private:
    absl::StatusOr<void*> DoAllocate(size_t, size_t,
                                     memory::StreamHandle) override {
      return absl::InternalError("must not be called");
    }
    void DoDeallocate(void*, size_t, size_t,
                      memory::StreamHandle) noexcept override {}
    size_t DoReleaseCached() override { return 0; }
    memory::AllocatorStats DoGetStats() const override { return {}; }
  } fake;
  ForwardOptions options;
  options.workspace_allocator = &fake;
  std::vector<float> out;
  const absl::Status status =
      attention->Forward(problem.View(&problem.q), problem.View(&problem.k),
                         problem.View(&problem.v), problem.View(&out), options);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("options.workspace_allocator allocates in cuda:0 but "
                        "the tensors are on cpu"));
}

}  // namespace
}  // namespace dilated
