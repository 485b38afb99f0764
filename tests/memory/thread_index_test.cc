#include "memory/internal/thread_index.h"

#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace dilated {
namespace memory {
namespace memory_internal {
namespace {

TEST(ThreadIndexTest, StableWithinAThread) {
  const int index = ThisThreadIndex();
  EXPECT_GE(index, 0);
  EXPECT_EQ(ThisThreadIndex(), index);
}

TEST(ThreadIndexTest, ConcurrentThreadsGetDistinctIndices) {
  constexpr int kThreads = 8;
  std::vector<int> indices(kThreads);
  std::atomic<int> arrived{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      indices[t] = ThisThreadIndex();
      // Stay alive until all have an index: none can have been recycled.
      arrived.fetch_add(1);
      while (arrived.load() < kThreads) std::this_thread::yield();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(std::set<int>(indices.begin(), indices.end()).size(),
            static_cast<size_t>(kThreads));
}

TEST(ThreadIndexTest, IndicesOfExitedThreadsAreReused) {
  int first = -1;
  std::thread([&] { first = ThisThreadIndex(); }).join();
  int second = -1;
  std::thread([&] { second = ThisThreadIndex(); }).join();
  EXPECT_EQ(first, second);
}

TEST(ThreadIndexTest, OnlyIndicesNoThreadHoldsCanBeLeased) {
  const int mine = ThisThreadIndex();
  EXPECT_FALSE(TryLeaseThreadIndex(mine));
  int exited = -1;
  std::thread([&] { exited = ThisThreadIndex(); }).join();
  ASSERT_TRUE(TryLeaseThreadIndex(exited));
  // While leased, a new thread gets another index.
  int other = -1;
  std::thread([&] { other = ThisThreadIndex(); }).join();
  EXPECT_NE(other, exited);
  EXPECT_FALSE(TryLeaseThreadIndex(exited));  // Already leased.
  ReleaseLeasedThreadIndex(exited);
  EXPECT_TRUE(TryLeaseThreadIndex(exited));
  ReleaseLeasedThreadIndex(exited);
}

}  // namespace
}  // namespace memory_internal
}  // namespace memory
}  // namespace dilated
