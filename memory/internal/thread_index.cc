#include "memory/internal/thread_index.h"

#include <algorithm>
#include <mutex>
#include <vector>

namespace dilated {
namespace memory {
namespace memory_internal {
namespace {

struct IndexPool {
  std::mutex mutex;
  std::vector<int> released;  // Held by no thread; reused first.
  int next = 0;               // Never handed out at or above this.
};

// Leaky: thread exits may run after static destructors.
IndexPool& Pool() {
  static IndexPool* pool = new IndexPool;
  return *pool;
}

int AcquireIndex() {
  IndexPool& pool = Pool();
  std::lock_guard<std::mutex> lock(pool.mutex);
  if (!pool.released.empty()) {
    // The smallest free index, so live threads keep indices dense.
    auto smallest =
        std::min_element(pool.released.begin(), pool.released.end());
    const int index = *smallest;
    pool.released.erase(smallest);
    return index;
  }
  return pool.next++;
}

void ReleaseIndex(int index) {
  IndexPool& pool = Pool();
  std::lock_guard<std::mutex> lock(pool.mutex);
  pool.released.push_back(index);
}

// Gives the index back when the thread exits.
struct IndexHolder {
  IndexHolder() : index(AcquireIndex()) {}
  ~IndexHolder() {
    ThreadIndexSlot() = kExitingThread;
    ReleaseIndex(index);
  }
  const int index;
};

}  // namespace

int AssignThreadIndex() {
  static thread_local IndexHolder holder;
  ThreadIndexSlot() = holder.index;
  return holder.index;
}

bool TryLeaseThreadIndex(int index) {
  IndexPool& pool = Pool();
  std::lock_guard<std::mutex> lock(pool.mutex);
  auto it = std::find(pool.released.begin(), pool.released.end(), index);
  if (it == pool.released.end()) return false;
  pool.released.erase(it);
  return true;
}

void ReleaseLeasedThreadIndex(int index) { ReleaseIndex(index); }

}  // namespace memory_internal
}  // namespace memory
}  // namespace dilated
