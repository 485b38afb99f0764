// File: internal/spin_lock.h
//
// SpinLock: a one-word lock for critical sections of a few dozen instructions
// (a free-list push or pop). Taking it uncontended is one atomic exchange; a
// waiter spins briefly and then yields, so a preempted holder on a machine
// with few cores does not stall the others for a whole time slice.
//
//   SpinLock lock;
//   {
//     SpinLockHolder hold(&lock);
//     list.push_back(block);
//   }

#ifndef MEMORY_INTERNAL_SPIN_LOCK_H_
#define MEMORY_INTERNAL_SPIN_LOCK_H_

#include <atomic>
#include <thread>

#include "absl/base/optimization.h"
#include "absl/base/thread_annotations.h"

namespace dilated {
namespace memory {
namespace memory_internal {

class ABSL_LOCKABLE SpinLock {
 public:
  SpinLock() = default;
  SpinLock(const SpinLock&) = delete;
  SpinLock& operator=(const SpinLock&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() {
    if (ABSL_PREDICT_TRUE(!locked_.exchange(true, std::memory_order_acquire))) {
      return;
    }
    SlowLock();
  }

  void Unlock() ABSL_UNLOCK_FUNCTION() {
    locked_.store(false, std::memory_order_release);
  }

 private:
  void SlowLock() {
    // 64 pauses (~1-2 us) cover a free-list operation of the holder; past
    // that the holder was probably preempted, so give the core away.
    int spins = 0;
    do {
      while (locked_.load(std::memory_order_relaxed)) {
        if (++spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
          __builtin_ia32_pause();
#endif
        } else {
          std::this_thread::yield();
        }
      }
    } while (locked_.exchange(true, std::memory_order_acquire));
  }

  std::atomic<bool> locked_{false};
};

// Holds a SpinLock for the lifetime of the object.
class ABSL_SCOPED_LOCKABLE SpinLockHolder {
 public:
  explicit SpinLockHolder(SpinLock* lock) ABSL_EXCLUSIVE_LOCK_FUNCTION(lock)
      : lock_(lock) {
    lock_->Lock();
  }
  ~SpinLockHolder() ABSL_UNLOCK_FUNCTION() { lock_->Unlock(); }
  SpinLockHolder(const SpinLockHolder&) = delete;
  SpinLockHolder& operator=(const SpinLockHolder&) = delete;

 private:
  SpinLock* const lock_;
};

}  // namespace memory_internal
}  // namespace memory
}  // namespace dilated

#endif  // MEMORY_INTERNAL_SPIN_LOCK_H_
