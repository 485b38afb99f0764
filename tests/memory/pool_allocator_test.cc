// Pool-specific behaviour; the shared contract is in the conformance suite.
#include "memory/pool_allocator.h"

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "memory/host_allocator.h"
#include "memory/tracking_allocator.h"

namespace dilated {
namespace memory {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

class PoolAllocatorTest : public ::testing::Test {
 protected:
  PoolAllocatorTest() : upstream_(&host_) {}
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }

  void* MustAllocate(Allocator& a, size_t bytes,
                     StreamHandle stream = kDefaultStream) {
    absl::StatusOr<void*> p = a.Allocate(bytes, kDefaultAlignment, stream);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? *p : nullptr;
  }

  HostAllocator host_;
  TrackingAllocator upstream_;  // Sees every segment the pool reserves.
};

TEST_F(PoolAllocatorTest, ReusesAFreedBlockWithoutTheUpstream) {
  PoolAllocator pool(&upstream_);
  void* p = MustAllocate(pool, 1000);
  pool.Deallocate(p, 1000);
  EXPECT_EQ(MustAllocate(pool, 1000), p);  // Same class, same thread: LIFO.
  pool.Deallocate(p, 1000);
  void* q = MustAllocate(pool, 1010);  // Same 1024-byte class.
  EXPECT_EQ(q, p);
  pool.Deallocate(q, 1010);
  EXPECT_EQ(upstream_.GetStats().allocation_count, 1);
  const AllocatorStats stats = pool.GetStats();
  EXPECT_EQ(stats.pool_misses, 1);
  EXPECT_EQ(stats.pool_hits, 2);
  // One segment of one span (a page): with 1000 bytes in use, the headroom
  // of an eighth allows nothing larger.
  EXPECT_EQ(stats.bytes_reserved, static_cast<int64_t>(kPageSize));
}

TEST_F(PoolAllocatorTest, StatisticsAreExactForOneThread) {
  PoolAllocator pool(&upstream_);
  void* a = MustAllocate(pool, 100);
  void* b = MustAllocate(pool, 3 * kMiB);
  void* c = MustAllocate(pool, 70000);
  pool.Deallocate(b, 3 * kMiB);
  void* d = MustAllocate(pool, 5);
  AllocatorStats stats = pool.GetStats();
  EXPECT_EQ(stats.bytes_in_use, 100 + 70000 + 5);
  EXPECT_EQ(stats.peak_bytes_in_use,
            static_cast<int64_t>(100 + 3 * kMiB + 70000));
  EXPECT_EQ(stats.allocation_count, 4);
  EXPECT_EQ(stats.deallocation_count, 1);
  EXPECT_EQ(stats.bytes_reserved, upstream_.GetStats().bytes_in_use);
  pool.Deallocate(a, 100);
  pool.Deallocate(c, 70000);
  pool.Deallocate(d, 5);
  stats = pool.GetStats();
  EXPECT_EQ(stats.bytes_in_use, 0);
  EXPECT_EQ(stats.live_allocations(), 0);
}

TEST_F(PoolAllocatorTest, ReleaseCachedReturnsEverySegment) {
  PoolAllocator pool(&upstream_);
  std::vector<std::pair<void*, size_t>> blocks;
  for (size_t bytes : {size_t{64}, size_t{5000}, size_t{70000}, kMiB, 3 * kMiB,
                       12 * kMiB, 40 * kMiB}) {
    for (int i = 0; i < 3; ++i)
      blocks.push_back({MustAllocate(pool, bytes), bytes});
  }
  const int64_t reserved = pool.GetStats().bytes_reserved;
  EXPECT_GT(reserved, 0);
  for (auto& b : blocks) pool.Deallocate(b.first, b.second);
  EXPECT_EQ(pool.ReleaseCached(), static_cast<size_t>(reserved));
  EXPECT_TRUE(upstream_.CheckNoLeaks().ok()) << upstream_.CheckNoLeaks();
  EXPECT_EQ(pool.GetStats().bytes_reserved, 0);
  EXPECT_EQ(pool.GetStats().peak_bytes_reserved, reserved);
  // Still usable afterwards.
  void* p = MustAllocate(pool, 64);
  pool.Deallocate(p, 64);
}

TEST_F(PoolAllocatorTest, ReleaseCachedKeepsSegmentsWithLiveBlocks) {
  PoolAllocator pool(&upstream_);
  void* live = MustAllocate(pool, 64);         // A one-page segment.
  void* freed = MustAllocate(pool, 8 * kMiB);  // A segment of its own.
  ASSERT_EQ(upstream_.LiveBlocks().size(), 2u);
  pool.Deallocate(freed, 8 * kMiB);
  const int64_t before = upstream_.GetStats().bytes_in_use;
  EXPECT_EQ(pool.ReleaseCached(), static_cast<size_t>(before) - kPageSize);
  EXPECT_EQ(upstream_.LiveBlocks().size(), 1u);  // The 64-byte block's.
  pool.Deallocate(live, 64);
  EXPECT_EQ(pool.ReleaseCached(), kPageSize);
  EXPECT_TRUE(upstream_.CheckNoLeaks().ok());
}

TEST_F(PoolAllocatorTest, FreedLargeBlocksMergeToServeALargerRequest) {
  PoolAllocator pool(&upstream_);
  pool.Deallocate(MustAllocate(pool, 16 * kMiB), 16 * kMiB);
  void* blocks[4];
  // Split from the freed 16 MiB block: one segment.
  for (void*& b : blocks) b = MustAllocate(pool, 4 * kMiB);
  EXPECT_EQ(upstream_.GetStats().allocation_count, 1);
  for (void* b : blocks) pool.Deallocate(b, 4 * kMiB);
  // No cached block fits 16 MiB exactly: they go back to the heap, merge,
  // and the merged block serves the request without a new segment.
  void* big = MustAllocate(pool, 16 * kMiB);
  EXPECT_EQ(upstream_.GetStats().allocation_count, 1);
  pool.Deallocate(big, 16 * kMiB);
}

TEST_F(PoolAllocatorTest, LargeBlocksSplitFromOneSegment) {
  PoolAllocator pool(&upstream_);
  pool.Deallocate(MustAllocate(pool, 7 * kMiB), 7 * kMiB);
  void* a = MustAllocate(pool, 2 * kMiB);
  void* b = MustAllocate(pool, 5 * kMiB);
  EXPECT_EQ(upstream_.GetStats().allocation_count, 1);  // The 7 MiB one.
  EXPECT_EQ(static_cast<char*>(b) - static_cast<char*>(a),
            static_cast<std::ptrdiff_t>(2 * kMiB));
  pool.Deallocate(a, 2 * kMiB);
  pool.Deallocate(b, 5 * kMiB);
}

TEST_F(PoolAllocatorTest, LimitReleasesTheCacheAndRetriesOnce) {
  PoolOptions options;
  options.max_reserved_bytes = 24 * kMiB;
  PoolAllocator pool(&upstream_, options);
  // 20 blocks of 1 MiB (a segment each), then free them all: at
  // least 20 MiB reserved, at most the headroom of an eighth more.
  std::vector<void*> small;
  for (int i = 0; i < 20; ++i) small.push_back(MustAllocate(pool, kMiB));
  for (void* p : small) pool.Deallocate(p, kMiB);
  EXPECT_GE(pool.GetStats().bytes_reserved, static_cast<int64_t>(20 * kMiB));
  EXPECT_LE(pool.GetStats().bytes_reserved,
            static_cast<int64_t>(20 * kMiB + 20 * kMiB / 8));
  // 20 MiB more would pass the limit: the pool returns its cached spans to
  // the upstream, then succeeds.
  void* big = MustAllocate(pool, 20 * kMiB);
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(pool.GetStats().bytes_reserved, static_cast<int64_t>(20 * kMiB));
  // With the big block live there is nothing left to release: fail.
  absl::StatusOr<void*> more = pool.Allocate(8 * kMiB);
  ASSERT_FALSE(more.ok());
  EXPECT_EQ(more.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(more.status().message().find("limit"), std::string::npos)
      << more.status();
  EXPECT_NE(more.status().message().find("after returning cached memory"),
            std::string::npos)
      << more.status();
  pool.Deallocate(big, 20 * kMiB);
  void* again = MustAllocate(pool, 8 * kMiB);  // Fits the freed segment.
  pool.Deallocate(again, 8 * kMiB);
  EXPECT_LE(pool.GetStats().peak_bytes_reserved,
            static_cast<int64_t>(24 * kMiB));
}

// The workspace trace of attention: each call allocates one workspace and
// frees it; the backward's is larger than the forward's. The pool reserves
// close to the peak it hands out, and after the first step reserves nothing.
TEST_F(PoolAllocatorTest, WorkspaceTraceReservesCloseToThePeakInUse) {
  struct Step {
    size_t forward;
    size_t backward;
  };
  // About the forward and backward workspaces of "improved" and "standard"
  // on config A, n = 8192, 2 threads (1.11 and 3.25 MiB, 36.0 and 71.0 MiB,
  // as benchmarks/attention_benchmark.cc reports them), and two class sizes.
  for (const Step step : {Step{1167360, 3408384}, Step{37765120, 74481664},
                          Step{600000, 900000}}) {
    PoolAllocator pool(&upstream_);
    int64_t misses_after_first_step = 0;
    for (int i = 0; i < 4; ++i) {
      pool.Deallocate(MustAllocate(pool, step.forward), step.forward);
      pool.Deallocate(MustAllocate(pool, step.backward), step.backward);
      if (i == 0) misses_after_first_step = pool.GetStats().pool_misses;
    }
    const AllocatorStats stats = pool.GetStats();
    EXPECT_EQ(stats.pool_misses, misses_after_first_step) << step.backward;
    EXPECT_EQ(stats.peak_bytes_in_use, static_cast<int64_t>(step.backward));
    // The bar of the memory work: at most 1.2 times the peak in use.
    EXPECT_LE(stats.peak_bytes_reserved,
              static_cast<int64_t>(step.backward + step.backward / 5))
        << step.backward;
  }
  EXPECT_TRUE(upstream_.CheckNoLeaks().ok()) << upstream_.CheckNoLeaks();
}

TEST_F(PoolAllocatorTest, ManySmallRequestsGrowTheReserveGeometrically) {
  PoolAllocator pool(&upstream_);
  constexpr int kBlocks = 100000;  // 6.1 MiB of 64-byte blocks.
  std::vector<void*> blocks;
  for (int i = 0; i < kBlocks; ++i) blocks.push_back(MustAllocate(pool, 64));
  // One page at a time would take 98 segments; growing by an eighth of what
  // is in use takes about 40 (1.125^40 = 111 pages).
  EXPECT_LE(upstream_.GetStats().allocation_count, 45);
  EXPECT_LE(pool.GetStats().bytes_reserved,
            static_cast<int64_t>(kBlocks * 64 + kBlocks * 64 / 5));
  for (void* p : blocks) pool.Deallocate(p, 64);
}

TEST_F(PoolAllocatorTest, ReleaseCachedReachesTheCacheOfAnExitedThread) {
  PoolAllocator pool(&upstream_);
  std::thread([&] {
    void* p = MustAllocate(pool, 4 * kMiB);
    pool.Deallocate(p, 4 * kMiB);  // Cached in this thread's shard.
  }).join();
  const int64_t reserved = upstream_.GetStats().bytes_in_use;
  EXPECT_GE(reserved, static_cast<int64_t>(4 * kMiB));
  EXPECT_EQ(pool.ReleaseCached(), static_cast<size_t>(reserved));
  EXPECT_TRUE(upstream_.CheckNoLeaks().ok()) << upstream_.CheckNoLeaks();
}

TEST_F(PoolAllocatorTest, ARunningThreadReturnsItsCacheAtItsNextCall) {
  PoolAllocator pool(&upstream_);
  std::mutex mutex;
  std::condition_variable changed;
  int stage = 0;
  std::thread worker([&] {
    void* p = MustAllocate(pool, 4 * kMiB);
    pool.Deallocate(p, 4 * kMiB);
    std::unique_lock<std::mutex> lock(mutex);
    stage = 1;
    changed.notify_all();
    changed.wait(lock, [&] { return stage == 2; });
    void* q = MustAllocate(pool, 64);  // Flushes the shard first.
    pool.Deallocate(q, 64);
    stage = 3;
    changed.notify_all();
    changed.wait(lock, [&] { return stage == 4; });
  });
  {
    std::unique_lock<std::mutex> lock(mutex);
    changed.wait(lock, [&] { return stage == 1; });
  }
  // The worker is running: its cached block stays for now.
  EXPECT_EQ(pool.ReleaseCached(), 0u);
  EXPECT_EQ(upstream_.LiveBlocks().size(), 1u);
  {
    std::unique_lock<std::mutex> lock(mutex);
    stage = 2;
    changed.notify_all();
    changed.wait(lock, [&] { return stage == 3; });
  }
  // Its next call returned the segment of the large block; what is left is
  // the 64-byte block's, 2 MiB (the headroom over the 4 MiB peak allows the
  // preferred size of a class segment).
  EXPECT_EQ(upstream_.GetStats().bytes_in_use, static_cast<int64_t>(2 * kMiB));
  {
    std::lock_guard<std::mutex> lock(mutex);
    stage = 4;
    changed.notify_all();
  }
  worker.join();
  pool.ReleaseCached();
  EXPECT_TRUE(upstream_.CheckNoLeaks().ok()) << upstream_.CheckNoLeaks();
}

TEST_F(PoolAllocatorTest, DestructionReturnsSegmentsEvenWithLiveBlocks) {
  {
    PoolAllocator pool(&upstream_);
    MustAllocate(pool, 100);
    MustAllocate(pool, 30 * kMiB);
  }
  EXPECT_TRUE(upstream_.CheckNoLeaks().ok()) << upstream_.CheckNoLeaks();
}

TEST_F(PoolAllocatorTest, OwnsAnUpstreamGivenByUniquePointer) {
  PoolAllocator pool(std::make_unique<HostAllocator>());
  EXPECT_EQ(pool.name(), "pool(host)");
  EXPECT_EQ(pool.space(), Device::Cpu());
  void* p = MustAllocate(pool, 10);
  pool.Deallocate(p, 10);
}

// An upstream that only guarantees 256-byte alignment (like cudaMalloc): it
// hands out host blocks offset by 256 bytes from a 64 KiB boundary.
class OffsetUpstream final : public Allocator {
 public:
  OffsetUpstream() : Allocator(Device::Cpu(), 256, "offset") {}

 private:
  absl::StatusOr<void*> DoAllocate(size_t bytes, size_t alignment,
                                   StreamHandle stream) override {
    absl::StatusOr<void*> raw = host_.Allocate(bytes + kPageSize, kPageSize);
    if (!raw.ok()) return raw;
    return static_cast<char*>(*raw) + 256;
  }
  void DoDeallocate(void* ptr, size_t bytes, size_t alignment,
                    StreamHandle stream) noexcept override {
    host_.Deallocate(static_cast<char*>(ptr) - 256, bytes + kPageSize,
                     kPageSize);
  }
  AllocatorStats DoGetStats() const override { return host_.GetStats(); }

  HostAllocator host_;
};

TEST_F(PoolAllocatorTest, AlignsSegmentsOfAWeaklyAlignedUpstream) {
  OffsetUpstream offset;
  {
    PoolAllocator pool(&offset);
    for (size_t alignment = 64; alignment <= kPageSize; alignment *= 4) {
      for (size_t bytes : {size_t{100}, size_t{70000}, 3 * kMiB}) {
        absl::StatusOr<void*> p = pool.Allocate(bytes, alignment);
        ASSERT_TRUE(p.ok()) << p.status();
        EXPECT_EQ(reinterpret_cast<uintptr_t>(*p) % alignment, 0u);
        pool.Deallocate(*p, bytes, alignment);
      }
    }
    // Each segment (whole pages) costs the upstream one page more, less the
    // 256 bytes the upstream does align to.
    const int64_t segments = offset.GetStats().live_allocations();
    EXPECT_GT(segments, 0);
    EXPECT_EQ((pool.GetStats().bytes_reserved -
               segments * static_cast<int64_t>(kPageSize - 256)) %
                  static_cast<int64_t>(kPageSize),
              0);
  }
  EXPECT_EQ(offset.GetStats().bytes_in_use, 0);
}

// Records the calls the pool makes; can be told to fail.
class FakeStreamOrdering final : public StreamOrdering {
 public:
  absl::Status OrderAfter(StreamHandle consumer,
                          StreamHandle producer) override {
    std::lock_guard<std::mutex> lock(mutex_);
    calls_.push_back({consumer, producer});
    return fail_ ? absl::InternalError("event record failed")
                 : absl::OkStatus();
  }
  absl::Status SynchronizeAll() override {
    std::lock_guard<std::mutex> lock(mutex_);
    ++synchronizations_;
    return absl::OkStatus();
  }
  std::vector<std::pair<StreamHandle, StreamHandle>> calls() {
    std::lock_guard<std::mutex> lock(mutex_);
    return calls_;
  }
  int synchronizations() {
    std::lock_guard<std::mutex> lock(mutex_);
    return synchronizations_;
  }
  void set_fail(bool fail) {
    std::lock_guard<std::mutex> lock(mutex_);
    fail_ = fail;
  }

 private:
  std::mutex mutex_;
  std::vector<std::pair<StreamHandle, StreamHandle>> calls_;
  int synchronizations_ = 0;
  bool fail_ = false;
};

StreamHandle Stream(int i) {
  return reinterpret_cast<StreamHandle>(0x1000 * i);
}

class StreamOrderedPoolTest : public PoolAllocatorTest {
 protected:
  StreamOrderedPoolTest()
      : ordering_(std::make_shared<FakeStreamOrdering>()),
        pool_(&upstream_, Options(ordering_)) {}
  static PoolOptions Options(std::shared_ptr<StreamOrdering> ordering) {
    PoolOptions options;
    options.stream_ordering = std::move(ordering);
    return options;
  }

  std::shared_ptr<FakeStreamOrdering> ordering_;
  PoolAllocator pool_;
};

TEST_F(StreamOrderedPoolTest, SameStreamReusesWithoutOrdering) {
  for (size_t bytes : {size_t{1000}, 4 * kMiB}) {
    void* p = MustAllocate(pool_, bytes, Stream(1));
    pool_.Deallocate(p, bytes, kDefaultAlignment, Stream(1));
    EXPECT_EQ(MustAllocate(pool_, bytes, Stream(1)), p);
    pool_.Deallocate(p, bytes, kDefaultAlignment, Stream(1));
  }
  EXPECT_TRUE(ordering_->calls().empty());
}

TEST_F(StreamOrderedPoolTest, OtherStreamReusesOnlyAfterOrdering) {
  for (size_t bytes : {size_t{1000}, 4 * kMiB}) {
    void* p = MustAllocate(pool_, bytes, Stream(1));
    pool_.Deallocate(p, bytes, kDefaultAlignment, Stream(1));
    const size_t before = ordering_->calls().size();
    void* q = MustAllocate(pool_, bytes, Stream(2));
    const auto calls = ordering_->calls();
    if (q == p) {
      // Reused: stream 2 must have been ordered after stream 1.
      ASSERT_EQ(calls.size(), before + 1) << bytes;
      EXPECT_EQ(calls.back().first, Stream(2));
      EXPECT_EQ(calls.back().second, Stream(1));
    }
    pool_.Deallocate(q, bytes, kDefaultAlignment, Stream(2));
  }
  // The large block is reused (the shard cache has no block of stream 2, the
  // heap holds the freed block); so at least that one was ordered.
  EXPECT_FALSE(ordering_->calls().empty());
}

TEST_F(StreamOrderedPoolTest, BlockOfOneStreamIsNotHandedToAnotherUnordered) {
  // Many small blocks freed on stream 1, then allocations on stream 2: every
  // reused address must come after an OrderAfter(2, 1).
  std::vector<void*> blocks;
  for (int i = 0; i < 200; ++i)
    blocks.push_back(MustAllocate(pool_, 256, Stream(1)));
  for (void* p : blocks) pool_.Deallocate(p, 256, kDefaultAlignment, Stream(1));
  for (int i = 0; i < 200; ++i) {
    void* q = MustAllocate(pool_, 256, Stream(2));
    const bool reused =
        std::find(blocks.begin(), blocks.end(), q) != blocks.end();
    if (reused) {
      // Either this allocation ordered stream 2 after 1, or an earlier one
      // did for the batch this block came with.
      bool ordered = false;
      for (const auto& call : ordering_->calls()) {
        if (call.first == Stream(2) && call.second == Stream(1)) ordered = true;
      }
      EXPECT_TRUE(ordered) << "block " << q << " reused unordered";
    }
    blocks.push_back(q);
  }
  for (size_t i = 200; i < blocks.size(); ++i) {
    pool_.Deallocate(blocks[i], 256, kDefaultAlignment, Stream(2));
  }
}

TEST_F(StreamOrderedPoolTest, OrderingFailureIsReturned) {
  void* p = MustAllocate(pool_, 4 * kMiB, Stream(1));
  pool_.Deallocate(p, 4 * kMiB, kDefaultAlignment, Stream(1));
  ordering_->set_fail(true);
  absl::StatusOr<void*> q =
      pool_.Allocate(4 * kMiB, kDefaultAlignment, Stream(2));
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().code(), absl::StatusCode::kInternal);
  ordering_->set_fail(false);
  void* r = MustAllocate(pool_, 4 * kMiB, Stream(2));  // The block survived.
  EXPECT_EQ(r, p);
  pool_.Deallocate(r, 4 * kMiB, kDefaultAlignment, Stream(2));
}

TEST_F(StreamOrderedPoolTest, ReleaseCachedSynchronizesFirst) {
  void* p = MustAllocate(pool_, 1000, Stream(1));
  pool_.Deallocate(p, 1000, kDefaultAlignment, Stream(1));
  EXPECT_EQ(ordering_->synchronizations(), 0);
  EXPECT_EQ(pool_.ReleaseCached(), kPageSize);  // One span's segment.
  EXPECT_EQ(ordering_->synchronizations(), 1);
  EXPECT_TRUE(upstream_.CheckNoLeaks().ok());
}

TEST_F(StreamOrderedPoolTest,
       GrowthReturnsStreamFreedSegmentsAfterSynchronizing) {
  void* small = MustAllocate(pool_, 2 * kMiB, Stream(1));
  pool_.Deallocate(small, 2 * kMiB, kDefaultAlignment, Stream(1));
  EXPECT_EQ(ordering_->synchronizations(), 0);
  // Too large for the freed segment: it goes back to the upstream, once
  // stream 1 is done with it, before the new one is reserved.
  void* big = MustAllocate(pool_, 8 * kMiB, Stream(1));
  EXPECT_EQ(ordering_->synchronizations(), 1);
  EXPECT_EQ(upstream_.LiveBlocks().size(), 1u);
  EXPECT_LE(pool_.GetStats().peak_bytes_reserved,
            static_cast<int64_t>(8 * kMiB + kMiB));
  pool_.Deallocate(big, 8 * kMiB, kDefaultAlignment, Stream(1));
}

TEST_F(PoolAllocatorTest, DoubleFreeOfACachedBlockDies) {
  EXPECT_DEATH(
      {
        PoolAllocator pool(&host_);
        void* p = *pool.Allocate(100);
        pool.Deallocate(p, 100);
        pool.Deallocate(p, 100);
      },
      "pool\\(host\\): Deallocate\\(.*100 bytes\\): double free");
}

TEST_F(PoolAllocatorTest, FreeAfterReleaseCachedDies) {
  EXPECT_DEATH(
      {
        PoolAllocator pool(&host_);
        void* p = *pool.Allocate(100);
        pool.Deallocate(p, 100);
        pool.ReleaseCached();
        pool.Deallocate(p, 100);
      },
      "not allocated by this pool");
}

TEST_F(PoolAllocatorTest, InteriorPointersDieNamingTheBlock) {
  EXPECT_DEATH(
      {
        PoolAllocator pool(&host_);
        char* p = static_cast<char*>(*pool.Allocate(1000));
        pool.Deallocate(p + 1024 + 8, 1000);
      },
      "inside the 1024-byte block");
  EXPECT_DEATH(
      {
        PoolAllocator pool(&host_);
        char* p = static_cast<char*>(*pool.Allocate(3 * kMiB));
        pool.Deallocate(p + 4096, 3 * kMiB);
      },
      "inside the 3145728-byte block");
}

// A thread frees blocks of the span it last freed into without the page
// map; the same errors must still be caught there.
TEST_F(PoolAllocatorTest, ErrorsInTheLastFreedSpanDie) {
  EXPECT_DEATH(
      {
        PoolAllocator pool(&host_);
        char* a = static_cast<char*>(*pool.Allocate(1000));
        char* b = static_cast<char*>(*pool.Allocate(1000));
        pool.Deallocate(a, 1000);  // Its span is now the hint.
        pool.Deallocate(b + 8, 1000);
      },
      "inside the 1024-byte block");
  EXPECT_DEATH(
      {
        PoolAllocator pool(&host_);
        void* a = *pool.Allocate(1000);
        void* b = *pool.Allocate(1000);
        pool.Deallocate(a, 1000);
        pool.Deallocate(b, 1000);
        pool.Deallocate(b, 1000);
      },
      "double free");
  EXPECT_DEATH(
      {
        PoolAllocator pool(&host_);
        void* a = *pool.Allocate(1000);
        void* b = *pool.Allocate(1000);
        pool.Deallocate(a, 1000);
        pool.Deallocate(b, 2000);  // Another class: not the hint's span.
      },
      "size mismatch");
}

TEST_F(PoolAllocatorTest, WrongAlignmentAtFreeIsASizeMismatch) {
  EXPECT_DEATH(
      {
        PoolAllocator pool(&host_);
        void* p = *pool.Allocate(100, 4096);
        pool.Deallocate(p, 100, 64);
      },
      "size mismatch");
}

}  // namespace
}  // namespace memory
}  // namespace dilated
