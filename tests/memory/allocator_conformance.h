// File: allocator_conformance.h
//
// The conformance suite every allocator passes: a TYPED_TEST_SUITE_P over
// "environments". An environment builds one allocator (with whatever
// upstream it needs), and knows how to write and check its memory:
//
//   struct MyEnv {
//     MyEnv();                                  // builds the allocator
//     Allocator& allocator();
//     void Fill(void* p, size_t n, uint8_t v);  // memset, or cudaMemset
//     bool Holds(const void* p, size_t n, uint8_t v);
//   };
//   using MyEnvs = ::testing::Types<MyEnv>;
//   INSTANTIATE_TYPED_TEST_SUITE_P(Mine, AllocatorConformanceTest, MyEnvs);
//
// An environment's destructor may check more (e.g. that a pool returned
// every segment to its tracked upstream).

#ifndef TESTS_MEMORY_ALLOCATOR_CONFORMANCE_H_
#define TESTS_MEMORY_ALLOCATOR_CONFORMANCE_H_

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "memory/allocator.h"

namespace dilated {
namespace memory {
namespace testing_internal {

struct LiveBlock {
  void* ptr;
  size_t bytes;
  size_t alignment;
};

// Returns true if no two blocks overlap.
inline bool Disjoint(std::vector<LiveBlock> blocks) {
  std::sort(
      blocks.begin(), blocks.end(),
      [](const LiveBlock& a, const LiveBlock& b) { return a.ptr < b.ptr; });
  for (size_t i = 1; i < blocks.size(); ++i) {
    const auto end =
        reinterpret_cast<uintptr_t>(blocks[i - 1].ptr) + blocks[i - 1].bytes;
    if (end > reinterpret_cast<uintptr_t>(blocks[i].ptr)) return false;
  }
  return true;
}

}  // namespace testing_internal

template <typename Env>
class AllocatorConformanceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Death tests re-run the binary instead of forking a process that may
    // hold threads or a CUDA context.
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    env_ = std::make_unique<Env>();
  }
  void TearDown() override { env_.reset(); }

  Allocator& allocator() { return env_->allocator(); }
  Env& env() { return *env_; }

  // Allocates or fails the test.
  void* MustAllocate(size_t bytes, size_t alignment = kDefaultAlignment) {
    absl::StatusOr<void*> ptr = allocator().Allocate(bytes, alignment);
    EXPECT_TRUE(ptr.ok()) << ptr.status();
    return ptr.ok() ? *ptr : nullptr;
  }

  std::unique_ptr<Env> env_;
};

TYPED_TEST_SUITE_P(AllocatorConformanceTest);

TYPED_TEST_P(AllocatorConformanceTest, HonoursEveryAlignment) {
  Allocator& a = this->allocator();
  const size_t largest = std::min<size_t>(a.max_alignment(), 64 << 10);
  for (size_t alignment = 1; alignment <= largest; alignment *= 2) {
    for (size_t bytes : {size_t{1}, size_t{7}, size_t{64}, size_t{1000},
                         size_t{4097}, size_t{100000}, size_t{(2 << 20) + 3}}) {
      void* p = this->MustAllocate(bytes, alignment);
      ASSERT_NE(p, nullptr);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % alignment, 0u)
          << bytes << " bytes, alignment " << alignment;
      this->env().Fill(p, bytes, 0x5a);
      EXPECT_TRUE(this->env().Holds(p, bytes, 0x5a));
      a.Deallocate(p, bytes, alignment);
    }
  }
  // The default alignment is 64 bytes.
  void* p = this->MustAllocate(3);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u);
  a.Deallocate(p, 3);
}

TYPED_TEST_P(AllocatorConformanceTest, RejectsBadAlignment) {
  Allocator& a = this->allocator();
  for (size_t alignment :
       {size_t{0}, size_t{3}, size_t{48}, a.max_alignment() * 2}) {
    absl::StatusOr<void*> p = a.Allocate(64, alignment);
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(
        p.status().message().find("alignment " + std::to_string(alignment)),
        std::string::npos)
        << p.status();
  }
  EXPECT_EQ(a.GetStats().allocation_count, 0);
}

TYPED_TEST_P(AllocatorConformanceTest, ZeroBytesIsNullAndNullIsNoOp) {
  Allocator& a = this->allocator();
  absl::StatusOr<void*> p = a.Allocate(0);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p, nullptr);
  a.Deallocate(nullptr, 0);
  a.Deallocate(nullptr, 128);
  const AllocatorStats stats = a.GetStats();
  EXPECT_EQ(stats.allocation_count, 0);
  EXPECT_EQ(stats.deallocation_count, 0);
  EXPECT_EQ(stats.bytes_in_use, 0);
}

TYPED_TEST_P(AllocatorConformanceTest, ImpossibleRequestIsResourceExhausted) {
  Allocator& a = this->allocator();
  // Above the interface's limit: rejected before the implementation.
  absl::StatusOr<void*> p = a.Allocate(kMaxAllocationBytes + 1);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kResourceExhausted);
  // 2^48 bytes: larger than any address space we run on, so the system or
  // the driver refuses it.
  p = a.Allocate(kMaxAllocationBytes);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kResourceExhausted)
      << p.status();
  // The allocator still works.
  void* q = this->MustAllocate(1000);
  a.Deallocate(q, 1000);
  EXPECT_EQ(a.GetStats().bytes_in_use, 0);
}

TYPED_TEST_P(AllocatorConformanceTest, ReusesFreedMemory) {
  Allocator& a = this->allocator();
  for (int round = 0; round < 200; ++round) {
    const size_t bytes = round % 2 == 0 ? 4096 : (3 << 20);
    void* p = this->MustAllocate(bytes);
    ASSERT_NE(p, nullptr);
    a.Deallocate(p, bytes);
  }
  const AllocatorStats stats = a.GetStats();
  EXPECT_EQ(stats.allocation_count, 200);
  EXPECT_EQ(stats.deallocation_count, 200);
  EXPECT_EQ(stats.bytes_in_use, 0);
  EXPECT_GE(stats.peak_bytes_in_use, 3 << 20);
}

TYPED_TEST_P(AllocatorConformanceTest, ManySizesLiveTogetherWithoutOverlap) {
  Allocator& a = this->allocator();
  const std::vector<size_t> sizes = {1,       63,
                                     64,      65,
                                     100,     1000,
                                     4095,    4096,
                                     65535,   65536,
                                     65537,   (1 << 20) - 1,
                                     1 << 20, (1 << 20) + 1,
                                     3 << 20, (10 << 20) + 7,
                                     17 << 20};
  std::vector<testing_internal::LiveBlock> blocks;
  int64_t total = 0;
  for (int copy = 0; copy < 3; ++copy) {
    for (size_t bytes : sizes) {
      void* p = this->MustAllocate(bytes);
      ASSERT_NE(p, nullptr);
      blocks.push_back({p, bytes, kDefaultAlignment});
      total += static_cast<int64_t>(bytes);
    }
  }
  EXPECT_TRUE(testing_internal::Disjoint(blocks));
  for (size_t i = 0; i < blocks.size(); ++i) {
    this->env().Fill(blocks[i].ptr, blocks[i].bytes, static_cast<uint8_t>(i));
  }
  for (size_t i = 0; i < blocks.size(); ++i) {
    EXPECT_TRUE(this->env().Holds(blocks[i].ptr, blocks[i].bytes,
                                  static_cast<uint8_t>(i)))
        << "block " << i << " of " << blocks[i].bytes << " bytes";
  }
  AllocatorStats stats = a.GetStats();
  EXPECT_EQ(stats.bytes_in_use, total);
  EXPECT_EQ(stats.live_allocations(), static_cast<int64_t>(blocks.size()));
  EXPECT_GE(stats.bytes_reserved, total);
  std::mt19937 rng(7);
  std::shuffle(blocks.begin(), blocks.end(), rng);
  for (const auto& b : blocks) a.Deallocate(b.ptr, b.bytes);
  stats = a.GetStats();
  EXPECT_EQ(stats.bytes_in_use, 0);
  EXPECT_EQ(stats.live_allocations(), 0);
  EXPECT_GE(stats.peak_bytes_in_use, total);
}

TYPED_TEST_P(AllocatorConformanceTest, ReleaseCachedKeepsLiveBlocks) {
  Allocator& a = this->allocator();
  void* kept = this->MustAllocate(5000);
  void* kept_large = this->MustAllocate(6 << 20);
  void* freed = this->MustAllocate(5000);
  this->env().Fill(kept, 5000, 0x11);
  this->env().Fill(kept_large, 6 << 20, 0x22);
  a.Deallocate(freed, 5000);
  a.ReleaseCached();
  EXPECT_TRUE(this->env().Holds(kept, 5000, 0x11));
  EXPECT_TRUE(this->env().Holds(kept_large, 6 << 20, 0x22));
  EXPECT_EQ(a.GetStats().bytes_in_use, 5000 + (6 << 20));
  a.Deallocate(kept, 5000);
  a.Deallocate(kept_large, 6 << 20);
  a.ReleaseCached();
  EXPECT_EQ(a.GetStats().bytes_in_use, 0);
}

TYPED_TEST_P(AllocatorConformanceTest, ThreadsAllocateAndFreeConcurrently) {
  Allocator& a = this->allocator();
  constexpr int kThreads = 4;
  constexpr int kSteps = 3000;
  std::atomic<int> corrupted{0};
  std::atomic<int> failed{0};
  auto work = [&](int thread) {
    std::mt19937 rng(100 + thread);
    std::vector<testing_internal::LiveBlock> live;
    const uint8_t pattern = static_cast<uint8_t>(0x30 + thread);
    for (int step = 0; step < kSteps; ++step) {
      if (live.size() < 16 && (live.empty() || rng() % 2 == 0)) {
        // Mostly small blocks; one in 16 large.
        const size_t bytes =
            rng() % 16 == 0 ? (1 << 20) + rng() % (4 << 20) : 1 + rng() % 20000;
        absl::StatusOr<void*> p = a.Allocate(bytes);
        if (!p.ok()) {
          ++failed;
          continue;
        }
        this->env().Fill(*p, std::min<size_t>(bytes, 256), pattern);
        live.push_back({*p, bytes, kDefaultAlignment});
      } else {
        const size_t i = rng() % live.size();
        if (!this->env().Holds(live[i].ptr,
                               std::min<size_t>(live[i].bytes, 256), pattern)) {
          ++corrupted;
        }
        a.Deallocate(live[i].ptr, live[i].bytes);
        live[i] = live.back();
        live.pop_back();
      }
    }
    for (const auto& b : live) a.Deallocate(b.ptr, b.bytes);
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(work, t);
  for (auto& t : threads) t.join();
  EXPECT_EQ(corrupted.load(), 0);
  EXPECT_EQ(failed.load(), 0);
  const AllocatorStats stats = a.GetStats();
  EXPECT_EQ(stats.bytes_in_use, 0);
  EXPECT_EQ(stats.live_allocations(), 0);
}

TYPED_TEST_P(AllocatorConformanceTest, DoubleFreeDies) {
  EXPECT_DEATH(
      {
        Allocator& a = this->allocator();
        void* p = *a.Allocate(100);
        a.Deallocate(p, 100);
        a.Deallocate(p, 100);
      },
      "Deallocate\\(.*(double free|not live|not allocated)");
  EXPECT_DEATH(
      {
        Allocator& a = this->allocator();
        void* p = *a.Allocate(5 << 20);
        a.Deallocate(p, 5 << 20);
        a.Deallocate(p, 5 << 20);
      },
      "Deallocate\\(.*(double free|not live|not allocated)");
}

TYPED_TEST_P(AllocatorConformanceTest, ForeignPointerDies) {
  EXPECT_DEATH(
      {
        int on_stack = 0;
        this->allocator().Deallocate(&on_stack, sizeof(on_stack));
      },
      "Deallocate\\(.*(not live|not allocated)");
  EXPECT_DEATH(
      {
        TypeParam other;
        void* p = *other.allocator().Allocate(100);
        this->allocator().Deallocate(p, 100);
      },
      "Deallocate\\(.*(not live|not allocated)");
}

TYPED_TEST_P(AllocatorConformanceTest, InteriorPointerDies) {
  EXPECT_DEATH(
      {
        void* p = *this->allocator().Allocate(4096);
        this->allocator().Deallocate(static_cast<char*>(p) + 64, 4096);
      },
      "Deallocate\\(.*(not live|not allocated|inside)");
  EXPECT_DEATH(
      {
        void* p = *this->allocator().Allocate(5 << 20);
        this->allocator().Deallocate(static_cast<char*>(p) + (2 << 20),
                                     5 << 20);
      },
      "Deallocate\\(.*(not live|not allocated|inside)");
}

TYPED_TEST_P(AllocatorConformanceTest, SizeMismatchDies) {
  EXPECT_DEATH(
      {
        void* p = *this->allocator().Allocate(4096);
        this->allocator().Deallocate(p, 100000);
      },
      "Deallocate\\(.*size mismatch");
  EXPECT_DEATH(
      {
        void* p = *this->allocator().Allocate(5 << 20);
        this->allocator().Deallocate(p, 64);
      },
      "Deallocate\\(.*size mismatch");
}

REGISTER_TYPED_TEST_SUITE_P(
    AllocatorConformanceTest, HonoursEveryAlignment, RejectsBadAlignment,
    ZeroBytesIsNullAndNullIsNoOp, ImpossibleRequestIsResourceExhausted,
    ReusesFreedMemory, ManySizesLiveTogetherWithoutOverlap,
    ReleaseCachedKeepsLiveBlocks, ThreadsAllocateAndFreeConcurrently,
    DoubleFreeDies, ForeignPointerDies, InteriorPointerDies, SizeMismatchDies);

}  // namespace memory
}  // namespace dilated

#endif  // TESTS_MEMORY_ALLOCATOR_CONFORMANCE_H_
