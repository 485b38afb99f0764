// File: internal/thread_index.h
//
// ThisThreadIndex returns a small dense number for the calling thread: the
// first thread gets 0, the next 1, and the index of a thread that exited is
// handed to the next new thread. No two live threads hold the same index, so
// an allocator can give each index its own cache and let the thread that
// holds the index use that cache without a lock.
//
// Ownership passes through a mutex (the index pool), so a thread that gets a
// recycled index sees everything its previous holder wrote. Other code can
// lease an index that no thread holds (TryLeaseThreadIndex) to reach the
// cache of a thread that exited.
//
// A thread whose index was already given back (its thread_local destructors
// run in an unspecified order) gets kExitingThread: it must not use a
// per-index cache any more.

#ifndef MEMORY_INTERNAL_THREAD_INDEX_H_
#define MEMORY_INTERNAL_THREAD_INDEX_H_

#include "absl/base/optimization.h"

namespace dilated {
namespace memory {
namespace memory_internal {

inline constexpr int kUnassignedThread = -1;
inline constexpr int kExitingThread = -2;

// Returns the index slot of the calling thread.
inline int& ThreadIndexSlot() {
  static thread_local int slot = kUnassignedThread;
  return slot;
}

// Assigns an index to the calling thread and returns it.
int AssignThreadIndex();

// Returns the calling thread's index, or kExitingThread (see above).
inline int ThisThreadIndex() {
  const int index = ThreadIndexSlot();
  if (ABSL_PREDICT_TRUE(index >= 0)) return index;
  return index == kExitingThread ? kExitingThread : AssignThreadIndex();
}

// Takes `index` if no thread holds it and returns true; no thread can get it
// until ReleaseLeasedThreadIndex(index).
bool TryLeaseThreadIndex(int index);

// Gives back an index taken with TryLeaseThreadIndex.
void ReleaseLeasedThreadIndex(int index);

}  // namespace memory_internal
}  // namespace memory
}  // namespace dilated

#endif  // MEMORY_INTERNAL_THREAD_INDEX_H_
