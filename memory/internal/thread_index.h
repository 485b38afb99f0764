// File: internal/thread_index.h
//
// ThisThreadIndex returns a small dense number for the calling thread: the
// first thread gets 0, the next 1, and the index of a thread that exited is
// handed to the next new thread. Allocators use it to give each running
// thread its own shard of cached blocks, so that threads do not contend.
// Two threads may share an index only briefly (a thread's own thread_local
// destructors may run after its index was recycled), so shards must still be
// locked; the index only makes contention rare.

#ifndef MEMORY_INTERNAL_THREAD_INDEX_H_
#define MEMORY_INTERNAL_THREAD_INDEX_H_

#include "absl/base/optimization.h"

namespace dilated {
namespace memory {
namespace memory_internal {

// Returns the index slot of the calling thread; -1 until assigned.
inline int& ThreadIndexSlot() {
  static thread_local int slot = -1;
  return slot;
}

// Assigns an index to the calling thread and returns it.
int AssignThreadIndex();

// Returns the calling thread's index (see the file comment).
inline int ThisThreadIndex() {
  const int index = ThreadIndexSlot();
  return ABSL_PREDICT_TRUE(index >= 0) ? index : AssignThreadIndex();
}

}  // namespace memory_internal
}  // namespace memory
}  // namespace dilated

#endif  // MEMORY_INTERNAL_THREAD_INDEX_H_
