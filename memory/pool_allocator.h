// File: pool_allocator.h
//
// PoolAllocator: a caching allocator over any upstream Allocator (host,
// cudaMalloc, ...). It reserves large segments from the upstream and serves
// requests from them, so that steady-state allocation costs a few dozen
// nanoseconds instead of a system or driver call.
//
//   dilated::memory::HostAllocator host;
//   dilated::memory::PoolAllocator pool(&host);
//   absl::StatusOr<void*> p = pool.Allocate(1 << 20);
//   pool.Deallocate(*p, 1 << 20);   // cached, not returned to `host`
//   pool.ReleaseCached();           // now returned
//
// Design (PyTorch's CUDACachingAllocator and RMM's pool are the anchors; the
// per-thread front end is tcmalloc's):
// - Requests up to 512 KiB round up to a size class (size_classes.h).
//   Blocks of a class are carved from spans of whole 64 KiB pages and cached
//   per class.
// - Larger requests round up to whole pages and take the best-fitting free
//   block of the segments, split off the rest, and merge with free
//   neighbours when freed (internal/block_heap.h).
// - Each thread has its own shard of cached blocks (per class, plus up to
//   four large blocks reused for the same rounded size). A shard belongs to
//   a thread index (internal/thread_index.h): no two live threads share one,
//   so its thread uses it without a lock, and the steady state is a vector
//   pop, a push and one atomic exchange. Shards exchange class blocks with
//   shared lists in batches; a large request that none of the thread's
//   cached large blocks fits exactly first returns them to the heap, so they
//   merge and can serve it. Threads beyond kMaxShards, and threads that are
//   exiting, use the shared lists directly under the central lock.
// - Every block has a state byte reached through a page map (a radix tree
//   of the addresses), so Deallocate aborts with a clear message on a double
//   free, a foreign or interior pointer, or a size that does not match,
//   before any list is touched. Each thread's list of a class remembers the
//   span it last freed into (with the span's generation, which moves on when
//   the span goes back to the heap); a block of that span skips the page map
//   walk but gets the same checks, which then wait on the pointer for one
//   subtraction, one multiplication and the state byte only.
// - Stream-ordered reuse (device pools, `options.stream_ordering` set): a
//   cached block remembers the stream it was freed on. Allocations on that
//   stream reuse it at once; another stream gets it only after
//   StreamOrdering::OrderAfter (an event recorded on the old stream that the
//   new one waits for). Host pools have no StreamOrdering and ignore streams.
// - Growth: a segment is the block the request needs (a class span, or the
//   request in whole pages) plus as much as the headroom allows: the pool
//   reserves at most the peak bytes in use (this request included) plus an
//   eighth, and never more per segment than PyTorch's sizes (2 MiB for
//   class spans, 20 MiB for requests under 10 MiB, the request rounded to
//   2 MiB above). So a pool serving a few large workspaces reserves little
//   more than it hands out, and one serving many small requests grows its
//   reserve geometrically (about 40 upstream calls from 64 KiB to 6 MiB).
//   When the request does not fit the headroom, the free segments (all too
//   small for it) go back to the upstream first; on a stream-ordered pool
//   that waits for every stream (StreamOrdering::SynchronizeAll), so only
//   on a miss. `max_reserved_bytes` caps the total: a request that would
//   pass it, or that the upstream refuses, makes the pool release its
//   cached memory and try once more, then fail with ResourceExhausted.
// - Otherwise nothing goes back to the upstream until ReleaseCached() or
//   destruction. ReleaseCached() returns at once what is cached centrally, in
//   the calling thread's shard and in the shards of threads that have exited; a
//   thread that is still running keeps its shard until its next call into the
//   pool, which then returns it (a shard caches at most two batches per class
//   and four large blocks).
// Statistics: exact counts, bytes in use and bytes reserved. The peak in use
// is the sum of each thread shard's own peak: exact when one thread
// allocates and frees, an upper bound otherwise (an exact global peak would
// put one shared counter on every call). TrackingAllocator gives exact peaks.
// pool_misses counts allocations that reserved a new segment; every other
// allocation is a hit.

#ifndef MEMORY_POOL_ALLOCATOR_H_
#define MEMORY_POOL_ALLOCATOR_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "memory/allocator.h"
#include "memory/internal/block_heap.h"
#include "memory/internal/page_map.h"
#include "memory/size_classes.h"
#include "memory/stream_ordering.h"

namespace dilated {
namespace memory {

struct PoolOptions {
  // Upper bound on the bytes reserved from the upstream (segments, counted
  // as the upstream sees them). No limit by default.
  size_t max_reserved_bytes = std::numeric_limits<size_t>::max();
  // Orders the reuse of blocks across streams; required for device memory
  // used on several streams, null for host memory.
  std::shared_ptr<StreamOrdering> stream_ordering;
};

class PoolAllocator final : public Allocator {
 public:
  // REQUIRES: `upstream` outlives the pool.
  explicit PoolAllocator(Allocator* upstream, PoolOptions options = {});
  // Owns the upstream.
  explicit PoolAllocator(std::unique_ptr<Allocator> upstream,
                         PoolOptions options = {});
  // Returns every segment to the upstream. Blocks still allocated become
  // invalid.
  ~PoolAllocator() override;

  // Returns the upstream allocator.
  Allocator* upstream() const { return upstream_; }

 private:
  struct Span;
  struct Shard;
  struct CachedBlock {
    void* ptr;
    std::atomic<uint8_t>* state;
    uintptr_t tag;  // Stream it was freed on, or BlockHeap::kNoTag.
  };
  // A thread's cached blocks of one class: a stack in a fixed array, and
  // the span of the block the thread last freed through the page map (the
  // hint): a block of that span is freed without the page map while the
  // span's generation is still hint_generation.
  struct FreeList {
    CachedBlock* items = nullptr;
    int32_t size = 0;
    int32_t capacity = 0;
    uintptr_t hint_start = 0;
    size_t hint_bytes = 0;  // 0: no hint.
    Span* hint_span = nullptr;
    uint32_t hint_generation = 0;
  };
  struct CachedLarge {
    Span* span;
    uintptr_t tag;
  };
  struct Segment {
    void* raw;         // What the upstream returned.
    size_t raw_bytes;  // What the upstream was asked for.
    size_t alignment;  // The alignment it was asked for.
  };

  // Threads map to shards by their index (internal/thread_index.h); 256
  // covers the cores of the hosts we target, more threads use the shared
  // lists under the central lock.
  static constexpr int kMaxShards = 256;
  // Large blocks cached per shard before the oldest goes back to the heap:
  // enough for the few large buffers a step of a model reuses.
  static constexpr int kLargeCacheEntries = 4;

  absl::StatusOr<void*> DoAllocate(size_t bytes, size_t alignment,
                                   StreamHandle stream) override;
  void DoDeallocate(void* ptr, size_t bytes, size_t alignment,
                    StreamHandle stream) noexcept override;
  size_t DoReleaseCached() override;
  AllocatorStats DoGetStats() const override;

  uintptr_t TagFor(StreamHandle stream) const {
    return ordering_ != nullptr ? reinterpret_cast<uintptr_t>(stream)
                                : memory_internal::BlockHeap::kNoTag;
  }
  // Returns the calling thread's shard, or nullptr if it has none (index
  // beyond kMaxShards, or exiting).
  Shard* ThisShard();
  // ThisShard's slow path: makes the shard or flushes it as requested.
  Shard* PrepareShard(int index);
  Shard* CreateShard(int index);

  absl::StatusOr<void*> AllocateSmallSlow(Shard& shard, int size_class,
                                          size_t bytes, uintptr_t tag,
                                          StreamHandle stream);
  absl::StatusOr<void*> AllocateLarge(Shard* shard, size_t bytes, uintptr_t tag,
                                      StreamHandle stream);
  absl::StatusOr<void*> AllocateShared(int size_class, size_t bytes,
                                       uintptr_t tag, StreamHandle stream);
  // Deallocate through the page map: large blocks, blocks of another span
  // than the hint's, threads without a shard, and every error.
  void DeallocateSlow(Shard* shard, int size_class, void* ptr, size_t bytes,
                      size_t alignment, StreamHandle stream);
  // Returns the state of the block at `ptr` in class span `span`; dies if
  // `ptr` is not a block start of it.
  std::atomic<uint8_t>* BlockState(Span* span, void* ptr, size_t bytes) const;
  // BlockState, then marks the block free; dies if it was not live.
  std::atomic<uint8_t>* FreeState(Span* span, void* ptr, size_t bytes) const;
  // FreeState, then pushes the block on `list` of `shard`.
  void PushFreed(Shard& shard, FreeList& list, Span* span, void* ptr,
                 size_t bytes, uintptr_t tag);
  void DeallocateLarge(Shard* shard, Span* span, void* ptr, size_t bytes,
                       size_t alignment, uintptr_t tag);
  void DeallocateShared(int size_class, const CachedBlock& block, size_t bytes);
  // Moves the oldest batch of a full list to the shared list.
  void FlushBatch(Shard& shard, int size_class);
  // Moves everything `shard` caches to the shared lists and the heap and
  // returns what it can to the upstream. Called by the shard's thread when
  // ReleaseCached asked it to.
  void FlushShard(Shard& shard);

  // Fills `out` with 1..batch blocks of `size_class` usable on `tag`.
  absl::Status Refill(int size_class, uintptr_t tag, StreamHandle stream,
                      CachedBlock* out, int* count);
  // Returns a heap block of `bytes` usable on `stream`, reserving a segment
  // (and on failure releasing the cache and retrying once) if needed.
  absl::StatusOr<memory_internal::BlockHeap::Block*> TakeBlock(
      std::unique_lock<std::mutex>& lock, size_t bytes, uintptr_t tag,
      StreamHandle stream);
  // Reserves a segment of at least `bytes` from the upstream: the request
  // plus whatever the growth headroom allows, up to the preferred segment
  // size; first returns free segments to the upstream if the reserve would
  // pass the headroom otherwise.
  absl::Status Grow(size_t bytes, uintptr_t tag, StreamHandle stream)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(central_mutex_);
  struct InUse {
    int64_t now;
    int64_t peak;
  };
  // Returns the bytes in use and the peak (each thread shard's own peak,
  // summed) over all shards and the shared lists.
  InUse CountInUse() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(central_mutex_);
  // Returns every free segment of the heap to the upstream; returns the
  // bytes returned. On a stream-ordered pool, segments freed on a stream
  // need all streams synchronized first: with `synchronize` false they stay.
  size_t ReleaseFreeSegments(bool synchronize)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(central_mutex_);
  Span* NewSpan() ABSL_EXCLUSIVE_LOCKS_REQUIRED(central_mutex_);
  // Takes a span whose block went back to the heap for later reuse.
  void RecycleSpan(Span* span) ABSL_EXCLUSIVE_LOCKS_REQUIRED(central_mutex_);
  void ReleaseLargeSpan(Span* span, uintptr_t tag)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(central_mutex_);
  void ReturnToCentral(int size_class, const CachedBlock* blocks, int count);
  // Moves the content of `shard` into `small` and `large`.
  // REQUIRES: the caller owns the shard (its thread, or a lease of its index).
  static void DrainShard(Shard& shard, std::vector<CachedBlock>* small,
                         std::vector<CachedLarge>* large);
  // Takes drained blocks into the shared state, returns free spans to the
  // heap and free segments to the upstream; returns the bytes returned.
  size_t ReleaseDrained(std::vector<CachedBlock>* small,
                        const std::vector<CachedLarge>& large);
  size_t ReleaseAll();
  void ReleaseEverything();

  [[noreturn]] ABSL_ATTRIBUTE_NOINLINE void DieNotOurs(void* ptr,
                                                       size_t bytes) const;
  [[noreturn]] ABSL_ATTRIBUTE_NOINLINE void DieInterior(
      void* ptr, size_t bytes, uintptr_t block, size_t block_bytes) const;
  [[noreturn]] ABSL_ATTRIBUTE_NOINLINE void DieSizeMismatch(
      void* ptr, size_t bytes, size_t alignment, size_t block_bytes) const;
  [[noreturn]] ABSL_ATTRIBUTE_NOINLINE void DieDoubleFree(void* ptr,
                                                          size_t bytes) const;

  Allocator* const upstream_;
  std::unique_ptr<Allocator> owned_upstream_;
  const size_t max_reserved_bytes_;
  const std::shared_ptr<StreamOrdering> ordering_;

  memory_internal::PageMap page_map_;  // Page -> Span*, lock-free reads.
  static_assert(memory_internal::PageMap::kPageShift == kPageShift,
                "the page map's pages are the pool's pages");
  std::array<std::atomic<Shard*>, kMaxShards> shards_{};
  std::mutex shard_creation_mutex_;

  mutable std::mutex central_mutex_;
  memory_internal::BlockHeap heap_ ABSL_GUARDED_BY(central_mutex_);
  std::vector<CachedBlock> central_lists_[kNumSizeClasses] ABSL_GUARDED_BY(
      central_mutex_);
  absl::flat_hash_map<uintptr_t, Segment> segments_
      ABSL_GUARDED_BY(central_mutex_);
  std::deque<Span> span_storage_ ABSL_GUARDED_BY(central_mutex_);
  std::vector<Span*> spare_spans_ ABSL_GUARDED_BY(central_mutex_);
  int64_t reserved_ ABSL_GUARDED_BY(central_mutex_) = 0;
  // Counters of the allocations made without a shard.
  int64_t shared_in_use_ ABSL_GUARDED_BY(central_mutex_) = 0;
  int64_t shared_peak_ ABSL_GUARDED_BY(central_mutex_) = 0;
  int64_t shared_allocations_ ABSL_GUARDED_BY(central_mutex_) = 0;
  int64_t shared_deallocations_ ABSL_GUARDED_BY(central_mutex_) = 0;
  int64_t peak_reserved_ ABSL_GUARDED_BY(central_mutex_) = 0;
  int64_t misses_ ABSL_GUARDED_BY(central_mutex_) = 0;
};

}  // namespace memory
}  // namespace dilated

#endif  // MEMORY_POOL_ALLOCATOR_H_
