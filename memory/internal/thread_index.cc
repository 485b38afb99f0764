#include "memory/internal/thread_index.h"

#include <mutex>
#include <vector>

namespace dilated {
namespace memory {
namespace memory_internal {
namespace {

struct IndexPool {
  std::mutex mutex;
  std::vector<int> released;  // Indices of exited threads, reused first.
  int next = 0;
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
    const int index = pool.released.back();
    pool.released.pop_back();
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
  ~IndexHolder() { ReleaseIndex(index); }
  const int index;
};

}  // namespace

int AssignThreadIndex() {
  static thread_local IndexHolder holder;
  ThreadIndexSlot() = holder.index;
  return holder.index;
}

}  // namespace memory_internal
}  // namespace memory
}  // namespace dilated
