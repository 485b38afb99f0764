#include "memory/tracking_allocator.h"

#include <string>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "memory/host_allocator.h"
#include "memory/pool_allocator.h"
#include "memory/size_classes.h"

namespace dilated {
namespace memory {
namespace {

TEST(TrackingAllocatorTest, KeepsAnExactPeak) {
  HostAllocator host;
  TrackingAllocator tracking(&host);
  void* a = *tracking.Allocate(100);
  void* b = *tracking.Allocate(300);
  tracking.Deallocate(a, 100);
  void* c = *tracking.Allocate(50);
  AllocatorStats stats = tracking.GetStats();
  EXPECT_EQ(stats.bytes_in_use, 350);
  EXPECT_EQ(stats.peak_bytes_in_use, 400);
  EXPECT_EQ(stats.allocation_count, 3);
  EXPECT_EQ(stats.deallocation_count, 1);
  tracking.Deallocate(b, 300);
  tracking.Deallocate(c, 50);
  EXPECT_EQ(tracking.GetStats().bytes_in_use, 0);
  EXPECT_TRUE(tracking.CheckNoLeaks().ok());
}

TEST(TrackingAllocatorTest, CheckNoLeaksNamesTheLiveBlocks) {
  HostAllocator host;
  TrackingAllocator tracking(&host);
  void* a = *tracking.Allocate(123);
  void* b = *tracking.Allocate(4567);
  const absl::Status status = tracking.CheckNoLeaks();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("2 blocks (4690 bytes) still live"),
            std::string::npos)
      << status;
  EXPECT_NE(status.message().find("(123 bytes)"), std::string::npos);
  EXPECT_NE(status.message().find("(4567 bytes)"), std::string::npos);
  EXPECT_EQ(tracking.LiveBlocks().size(), 2u);
  tracking.Deallocate(a, 123);
  tracking.Deallocate(b, 4567);
}

TEST(TrackingAllocatorTest, ReportsTheUpstreamReservationAndForwardsRelease) {
  HostAllocator host;
  PoolAllocator pool(&host);
  TrackingAllocator tracking(&pool);
  EXPECT_EQ(tracking.name(), "tracking(pool(host))");
  void* p = *tracking.Allocate(1000);
  tracking.Deallocate(p, 1000);
  // One segment of one span, a page.
  EXPECT_EQ(tracking.GetStats().bytes_reserved, int64_t{kPageSize});
  EXPECT_EQ(tracking.GetStats().pool_misses, 1);
  EXPECT_EQ(tracking.ReleaseCached(), kPageSize);
  EXPECT_EQ(tracking.GetStats().bytes_reserved, 0);
}

TEST(TrackingAllocatorTest, PassesUpstreamErrorsThrough) {
  HostAllocator host;
  TrackingAllocator tracking(&host);
  absl::StatusOr<void*> p = tracking.Allocate(64, 3);
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  p = tracking.Allocate(kMaxAllocationBytes);
  EXPECT_EQ(p.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(tracking.GetStats().allocation_count, 0);
}

TEST(TrackingAllocatorDeathTest, AlignmentMismatchDies) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        HostAllocator host;
        TrackingAllocator tracking(&host);
        void* p = *tracking.Allocate(100, 256);
        tracking.Deallocate(p, 100, 64);
      },
      "size mismatch, the block was allocated with 100 bytes, alignment 256");
}

}  // namespace
}  // namespace memory
}  // namespace dilated
