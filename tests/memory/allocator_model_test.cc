// Randomised allocate/free sequences checked against a simple model: live
// blocks never overlap, are aligned, keep their contents, and the
// statistics add up. Run under ThreadSanitizer with --config=tsan.
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/memory/host_envs.h"

namespace dilated {
namespace memory {
namespace {

struct ModelBlock {
  size_t bytes;
  size_t alignment;
  uint64_t id;
};

// The bytes a block of this id holds: its first eight bytes and, from 16
// bytes on, its last eight (fewer for shorter blocks), so a block that
// overlaps another or was handed out twice is caught when it is checked.
void Stamp(void* p, const ModelBlock& b) {
  std::memcpy(p, &b.id, std::min<size_t>(8, b.bytes));
  if (b.bytes >= 16) std::memcpy(static_cast<char*>(p) + b.bytes - 8, &b.id, 8);
}

bool HasStamp(const void* p, const ModelBlock& b) {
  if (std::memcmp(p, &b.id, std::min<size_t>(8, b.bytes)) != 0) return false;
  return b.bytes < 16 ||
         std::memcmp(static_cast<const char*>(p) + b.bytes - 8, &b.id, 8) == 0;
}

// Sizes log-uniform from 1 byte to 8 MiB; alignments mostly the default.
size_t RandomBytes(std::mt19937_64& rng) {
  const int log2 = static_cast<int>(rng() % 24);
  return 1 + rng() % (size_t{1} << log2);
}

size_t RandomAlignment(std::mt19937_64& rng, size_t max_alignment) {
  static constexpr size_t kChoices[] = {64, 64, 64, 1, 16, 256, 4096, 65536};
  const size_t a = kChoices[rng() % 8];
  return std::min(a, max_alignment);
}

template <typename Env>
class AllocatorModelTest : public ::testing::Test {};

using Envs = ::testing::Types<HostEnv, TrackingEnv, PoolEnv, PoolOverPoolEnv>;
TYPED_TEST_SUITE(AllocatorModelTest, Envs);

TYPED_TEST(AllocatorModelTest, OneThreadMatchesTheModel) {
  TypeParam env;
  Allocator& a = env.allocator();
  std::mt19937_64 rng(20261125);
  std::map<uintptr_t, ModelBlock> live;  // By address.
  int64_t in_use = 0, peak = 0, allocations = 0, deallocations = 0;
  uint64_t next_id = 1;
  for (int step = 0; step < 20000; ++step) {
    const bool allocate = live.empty() || (live.size() < 200 && rng() % 2);
    if (allocate) {
      ModelBlock b{RandomBytes(rng), RandomAlignment(rng, a.max_alignment()),
                   next_id++};
      absl::StatusOr<void*> p = a.Allocate(b.bytes, b.alignment);
      ASSERT_TRUE(p.ok()) << p.status();
      const uintptr_t start = reinterpret_cast<uintptr_t>(*p);
      ASSERT_EQ(start % b.alignment, 0u);
      auto next = live.lower_bound(start);
      if (next != live.end()) {
        ASSERT_LE(start + b.bytes, next->first) << "overlaps the next block";
      }
      if (next != live.begin()) {
        auto prev = std::prev(next);
        ASSERT_LE(prev->first + prev->second.bytes, start)
            << "overlaps the previous block";
      }
      Stamp(*p, b);
      live[start] = b;
      in_use += static_cast<int64_t>(b.bytes);
      peak = std::max(peak, in_use);
      ++allocations;
    } else {
      auto it = live.begin();
      std::advance(it, rng() % live.size());
      void* p = reinterpret_cast<void*>(it->first);
      ASSERT_TRUE(HasStamp(p, it->second)) << "block " << it->second.id;
      a.Deallocate(p, it->second.bytes, it->second.alignment);
      in_use -= static_cast<int64_t>(it->second.bytes);
      ++deallocations;
      live.erase(it);
    }
    if (rng() % 1000 == 0) a.ReleaseCached();
    if (step % 500 == 0) {
      const AllocatorStats stats = a.GetStats();
      ASSERT_EQ(stats.bytes_in_use, in_use) << "step " << step;
      ASSERT_EQ(stats.peak_bytes_in_use, peak) << "step " << step;
      ASSERT_EQ(stats.allocation_count, allocations);
      ASSERT_EQ(stats.deallocation_count, deallocations);
      ASSERT_GE(stats.bytes_reserved, in_use);
      ASSERT_EQ(
          stats.pool_hits + stats.pool_misses,
          stats.pool_misses == 0 && stats.pool_hits == 0 ? 0 : allocations);
    }
  }
  for (auto& entry : live) {
    a.Deallocate(reinterpret_cast<void*>(entry.first), entry.second.bytes,
                 entry.second.alignment);
  }
  EXPECT_EQ(a.GetStats().bytes_in_use, 0);
  EXPECT_EQ(a.GetStats().live_allocations(), 0);
}

// Several threads allocate and free at random; some blocks are handed to
// another thread through a mailbox and freed there; one thread now and then
// releases the cache. Each thread checks its own blocks' stamps, so a block
// given to two threads at once, or overlapping another, is caught.
TYPED_TEST(AllocatorModelTest, ThreadsMatchTheModel) {
  TypeParam env;
  Allocator& a = env.allocator();
  constexpr int kThreads = 4;
  constexpr int kSteps = 4000;
  struct Handoff {
    void* ptr;
    ModelBlock block;
  };
  std::mutex mailbox_mutex;
  std::vector<Handoff> mailbox;
  std::atomic<int64_t> allocations{0};
  std::atomic<int> errors{0};
  auto work = [&](int thread) {
    std::mt19937_64 rng(1000 + thread);
    std::vector<Handoff> live;
    for (int step = 0; step < kSteps; ++step) {
      const uint64_t dice = rng() % 100;
      if (live.empty() || (live.size() < 64 && dice < 45)) {
        ModelBlock b{RandomBytes(rng) % (1 << 20) + 1,
                     RandomAlignment(rng, a.max_alignment()),
                     (static_cast<uint64_t>(thread) << 32) |
                         static_cast<uint64_t>(step)};
        absl::StatusOr<void*> p = a.Allocate(b.bytes, b.alignment);
        if (!p.ok() || reinterpret_cast<uintptr_t>(*p) % b.alignment != 0) {
          ++errors;
          continue;
        }
        Stamp(*p, b);
        live.push_back({*p, b});
        ++allocations;
      } else if (dice < 50) {
        // Hand a block to whichever thread empties the mailbox.
        std::lock_guard<std::mutex> lock(mailbox_mutex);
        mailbox.push_back(live.back());
        live.pop_back();
      } else if (dice < 55) {
        std::vector<Handoff> received;
        {
          std::lock_guard<std::mutex> lock(mailbox_mutex);
          received.swap(mailbox);
        }
        for (const Handoff& h : received) {
          if (!HasStamp(h.ptr, h.block)) ++errors;
          a.Deallocate(h.ptr, h.block.bytes, h.block.alignment);
        }
      } else if (thread == 0 && dice == 99) {
        a.ReleaseCached();
      } else {
        const size_t i = rng() % live.size();
        if (!HasStamp(live[i].ptr, live[i].block)) ++errors;
        a.Deallocate(live[i].ptr, live[i].block.bytes, live[i].block.alignment);
        live[i] = live.back();
        live.pop_back();
      }
    }
    for (const Handoff& h : live) {
      if (!HasStamp(h.ptr, h.block)) ++errors;
      a.Deallocate(h.ptr, h.block.bytes, h.block.alignment);
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(work, t);
  for (auto& t : threads) t.join();
  for (const Handoff& h : mailbox) {
    if (!HasStamp(h.ptr, h.block)) ++errors;
    a.Deallocate(h.ptr, h.block.bytes, h.block.alignment);
  }
  EXPECT_EQ(errors.load(), 0);
  const AllocatorStats stats = a.GetStats();
  EXPECT_EQ(stats.bytes_in_use, 0);
  EXPECT_EQ(stats.allocation_count, allocations.load());
  EXPECT_EQ(stats.deallocation_count, allocations.load());
  EXPECT_GE(stats.peak_bytes_in_use, 1);
  a.ReleaseCached();
}

}  // namespace
}  // namespace memory
}  // namespace dilated
