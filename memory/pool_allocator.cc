#include "memory/pool_allocator.h"

#include <algorithm>
#include <utility>

#include "absl/base/optimization.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "memory/internal/fatal.h"
#include "memory/internal/thread_index.h"

namespace dilated {
namespace memory {

using memory_internal::BlockHeap;
using memory_internal::Fatal;

namespace {

constexpr uint8_t kFree = 0;
constexpr uint8_t kLive = 1;

// Segment sizes. The preferred sizes are PyTorch's CUDACachingAllocator
// constants: class spans come from 2 MiB segments (kSmallBuffer), 1-10 MiB
// requests from 20 MiB ones (kLargeBuffer), larger requests get their own
// segment rounded to 2 MiB (kMinLargeAlloc, kRoundLarge). They are upper
// bounds: a segment is only as much larger than the request as the growth
// headroom allows (Grow).
constexpr size_t kSmallSegment = size_t{2} << 20;
constexpr size_t kMediumSegment = size_t{20} << 20;
constexpr size_t kMinLargeAlloc = size_t{10} << 20;
constexpr size_t kRoundLarge = size_t{2} << 20;

// The pool reserves at most 1 + 1/kHeadroomDivisor times the peak bytes in
// use (counting the request being served) for segments larger than the
// request; beyond it, free segments go back to the upstream before a new one
// is reserved.
constexpr int64_t kHeadroomDivisor = 8;

constexpr size_t RoundUp(size_t x, size_t to) { return (x + to - 1) / to * to; }

// Requests up to this size use size classes; larger ones take best-fit
// blocks of whole pages. Classes this large hold one block per span, and a
// span never goes back to the heap while its blocks are cached, so a freed
// workspace of a class could not merge into a larger request's block. Above
// it, rounding to pages wastes at most an eighth.
constexpr size_t kMaxClassBytes = size_t{512} << 10;

// Returns the size class of a request, or -1 for a large block.
inline int ClassFor(size_t bytes, size_t alignment) {
  if (bytes > kMaxClassBytes) return -1;
  return alignment <= 64 ? SizeClassFor(bytes) : SizeClassFor(bytes, alignment);
}

size_t PreferredSegmentBytes(size_t bytes) {
  if (bytes <= kMaxSmallSize) return kSmallSegment;
  if (bytes < kMinLargeAlloc) return kMediumSegment;
  return RoundUp(bytes, kRoundLarge);
}

// Blocks kept in a thread's list of a class before a batch moves to the
// shared list: two batches, at least two blocks.
size_t Capacity(int size_class) {
  return std::max<size_t>(2, 2 * kSizeClasses[size_class].batch);
}

// A counter written by one thread and read by any: plain load and store, no
// read-modify-write.
inline void Add(std::atomic<int64_t>& counter, int64_t delta) {
  counter.store(counter.load(std::memory_order_relaxed) + delta,
                std::memory_order_relaxed);
}

// State bytes of 64 blocks, on a cache line of their own so that threads
// freeing blocks of different spans never share a line.
struct alignas(64) StateLine {
  std::atomic<uint8_t> states[64];
};

}  // namespace

// A heap block in use by the pool: blocks of one size class, or one large
// block. Published in the page map under the central lock; the fields the
// Deallocate path reads are not written again until the span is unpublished.
// A cache line of its own: spans of different threads sit side by side.
struct alignas(64) PoolAllocator::Span {
  BlockHeap::Block* block = nullptr;
  uintptr_t start = 0;
  size_t bytes = 0;
  int size_class = -1;  // -1: one large block.
  uint32_t object_size = 0;
  uint32_t magic = 0;  // DivisionMagic(object_size).
  uint32_t num_objects = 0;
  uint32_t scratch = 0;  // ReleaseDrained's count of cached blocks.
  std::atomic<uint8_t> large_state{kFree};
  // Counts the times the span went back to the heap; written under the
  // central lock, read by threads checking their hints.
  std::atomic<uint32_t> generation{0};
  std::unique_ptr<StateLine[]> lines;  // Class spans: one state per block.

  std::atomic<uint8_t>* State(uint32_t index) {
    return &lines[index >> 6].states[index & 63];
  }
};

// One thread index's cache. The thread holding the index uses it without a
// lock; other threads touch only the atomics, or the rest while they lease
// the index of a thread that exited.
struct alignas(64) PoolAllocator::Shard {
  FreeList lists[kNumSizeClasses];
  CachedLarge large[kLargeCacheEntries];
  int large_count = 0;
  std::atomic<bool> flush_requested{false};
  std::atomic<int64_t> in_use{0};
  std::atomic<int64_t> peak_in_use{0};
  std::atomic<int64_t> allocations{0};
  std::atomic<int64_t> deallocations{0};
  std::unique_ptr<CachedBlock[]> storage;  // Backs every list.

  void CountAllocation(size_t bytes) {
    const int64_t now =
        in_use.load(std::memory_order_relaxed) + static_cast<int64_t>(bytes);
    in_use.store(now, std::memory_order_relaxed);
    if (now > peak_in_use.load(std::memory_order_relaxed)) {
      peak_in_use.store(now, std::memory_order_relaxed);
    }
    Add(allocations, 1);
  }
  void CountDeallocation(size_t bytes) {
    Add(in_use, -static_cast<int64_t>(bytes));
    Add(deallocations, 1);
  }
};

PoolAllocator::PoolAllocator(Allocator* upstream, PoolOptions options)
    : Allocator(upstream->space(), kPageSize,
                absl::StrCat("pool(", upstream->name(), ")")),
      upstream_(upstream),
      max_reserved_bytes_(options.max_reserved_bytes),
      ordering_(std::move(options.stream_ordering)),
      heap_(kPageSize) {}

PoolAllocator::PoolAllocator(std::unique_ptr<Allocator> upstream,
                             PoolOptions options)
    : PoolAllocator(upstream.get(), std::move(options)) {
  owned_upstream_ = std::move(upstream);
}

PoolAllocator::~PoolAllocator() {
  ReleaseEverything();
  for (auto& slot : shards_) delete slot.load(std::memory_order_relaxed);
}

inline PoolAllocator::Shard* PoolAllocator::ThisShard() {
  const int index = memory_internal::ThisThreadIndex();
  if (ABSL_PREDICT_FALSE(static_cast<unsigned>(index) >= kMaxShards)) {
    return nullptr;
  }
  Shard* shard = shards_[index].load(std::memory_order_acquire);
  if (ABSL_PREDICT_FALSE(shard == nullptr || shard->flush_requested.load(
                                                 std::memory_order_relaxed))) {
    return PrepareShard(index);
  }
  return shard;
}

PoolAllocator::Shard* PoolAllocator::PrepareShard(int index) {
  Shard* shard = shards_[index].load(std::memory_order_acquire);
  if (shard == nullptr) shard = CreateShard(index);
  if (shard->flush_requested.load(std::memory_order_relaxed)) {
    FlushShard(*shard);
  }
  return shard;
}

PoolAllocator::Shard* PoolAllocator::CreateShard(int index) {
  std::lock_guard<std::mutex> lock(shard_creation_mutex_);
  Shard* shard = shards_[index].load(std::memory_order_acquire);
  if (shard != nullptr) return shard;
  shard = new Shard;
  size_t total = 0;
  for (int c = 0; c < kNumSizeClasses; ++c) total += Capacity(c);
  shard->storage.reset(new CachedBlock[total]);
  size_t offset = 0;
  for (int c = 0; c < kNumSizeClasses; ++c) {
    shard->lists[c].items = shard->storage.get() + offset;
    shard->lists[c].capacity = static_cast<int32_t>(Capacity(c));
    offset += Capacity(c);
  }
  shards_[index].store(shard, std::memory_order_release);
  return shard;
}

absl::StatusOr<void*> PoolAllocator::DoAllocate(size_t bytes, size_t alignment,
                                                StreamHandle stream) {
  const int size_class = ClassFor(bytes, alignment);
  const uintptr_t tag = TagFor(stream);
  Shard* const shard = ThisShard();
  if (ABSL_PREDICT_FALSE(size_class < 0)) {
    return AllocateLarge(shard, bytes, tag, stream);
  }
  if (ABSL_PREDICT_FALSE(shard == nullptr)) {
    return AllocateShared(size_class, bytes, tag, stream);
  }
  FreeList& list = shard->lists[size_class];
  if (ABSL_PREDICT_TRUE(list.size > 0 &&
                        list.items[list.size - 1].tag == tag)) {
    --list.size;
    list.items[list.size].state->store(kLive, std::memory_order_relaxed);
    shard->CountAllocation(bytes);
    return list.items[list.size].ptr;
  }
  return AllocateSmallSlow(*shard, size_class, bytes, tag, stream);
}

absl::StatusOr<void*> PoolAllocator::AllocateSmallSlow(Shard& shard,
                                                       int size_class,
                                                       size_t bytes,
                                                       uintptr_t tag,
                                                       StreamHandle stream) {
  FreeList& list = shard.lists[size_class];
  if (ordering_ != nullptr) {
    // Another stream's blocks may sit on top: look for one of ours, or one
    // nobody has used yet.
    for (int i = list.size; i-- > 0;) {
      if (list.items[i].tag == tag || list.items[i].tag == BlockHeap::kNoTag) {
        const CachedBlock block = list.items[i];
        std::copy(list.items + i + 1, list.items + list.size, list.items + i);
        --list.size;
        block.state->store(kLive, std::memory_order_relaxed);
        shard.CountAllocation(bytes);
        return block.ptr;
      }
    }
  }
  CachedBlock batch[kMaxBatch];
  int count = 0;
  absl::Status status = Refill(size_class, tag, stream, batch, &count);
  if (!status.ok()) return status;
  // batch[0] is the caller's; the rest go to this thread's list, and what
  // does not fit there back to the shared list.
  int kept = 1;
  while (kept < count && list.size < list.capacity) {
    list.items[list.size++] = batch[kept++];
  }
  if (kept < count) ReturnToCentral(size_class, batch + kept, count - kept);
  batch[0].state->store(kLive, std::memory_order_relaxed);
  shard.CountAllocation(bytes);
  return batch[0].ptr;
}

absl::StatusOr<void*> PoolAllocator::AllocateShared(int size_class,
                                                    size_t bytes, uintptr_t tag,
                                                    StreamHandle stream) {
  CachedBlock batch[kMaxBatch];
  int count = 0;
  absl::Status status = Refill(size_class, tag, stream, batch, &count);
  if (!status.ok()) return status;
  if (count > 1) ReturnToCentral(size_class, batch + 1, count - 1);
  batch[0].state->store(kLive, std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(central_mutex_);
  shared_in_use_ += static_cast<int64_t>(bytes);
  shared_peak_ = std::max(shared_peak_, shared_in_use_);
  ++shared_allocations_;
  return batch[0].ptr;
}

absl::Status PoolAllocator::Refill(int size_class, uintptr_t tag,
                                   StreamHandle stream, CachedBlock* out,
                                   int* count) {
  const int batch = kSizeClasses[size_class].batch;
  std::unique_lock<std::mutex> lock(central_mutex_);
  std::vector<CachedBlock>& list = central_lists_[size_class];
  int n = 0;
  for (size_t i = list.size(); i-- > 0 && n < batch;) {
    if (list[i].tag == tag || list[i].tag == BlockHeap::kNoTag) {
      out[n++] = list[i];
      list[i] = list.back();
      list.pop_back();
    }
  }
  if (n == 0 && !list.empty() && ordering_ != nullptr) {
    // Only other streams' blocks: take those of the most recent one after
    // ordering this stream behind it.
    const uintptr_t other = list.back().tag;
    absl::Status status =
        ordering_->OrderAfter(stream, reinterpret_cast<StreamHandle>(other));
    if (!status.ok()) return status;
    for (size_t i = list.size(); i-- > 0 && n < batch;) {
      if (list[i].tag == other) {
        out[n] = list[i];
        out[n++].tag = tag;
        list[i] = list.back();
        list.pop_back();
      }
    }
  }
  if (n > 0) {
    *count = n;
    return absl::OkStatus();
  }
  // Carve a new span.
  const SizeClassInfo& info = kSizeClasses[size_class];
  const size_t span_bytes = info.span_pages * kPageSize;
  absl::StatusOr<BlockHeap::Block*> block =
      TakeBlock(lock, span_bytes, tag, stream);
  if (!block.ok()) return block.status();
  Span* span = NewSpan();
  span->block = *block;
  span->start = (*block)->start;
  span->bytes = span_bytes;
  span->size_class = size_class;
  span->object_size = info.bytes;
  span->magic = DivisionMagic(info.bytes);
  span->num_objects = static_cast<uint32_t>(span_bytes / info.bytes);
  span->lines.reset(new StateLine[(span->num_objects + 63) / 64]());
  page_map_.SetRange(span->start, span_bytes, span);
  // Lowest addresses first out, so the caller's blocks are contiguous.
  for (uint32_t i = span->num_objects; i-- > 0;) {
    CachedBlock cached{
        reinterpret_cast<void*>(span->start + size_t{i} * info.bytes),
        span->State(i), tag};
    if (i < static_cast<uint32_t>(batch)) {
      out[n++] = cached;
    } else {
      list.push_back(cached);
    }
  }
  std::reverse(out, out + n);
  *count = n;
  return absl::OkStatus();
}

absl::StatusOr<BlockHeap::Block*> PoolAllocator::TakeBlock(
    std::unique_lock<std::mutex>& lock, size_t bytes, uintptr_t tag,
    StreamHandle stream) {
  BlockHeap::Block* block = heap_.Take(bytes);
  if (block == nullptr) {
    absl::Status status = Grow(bytes, tag, stream);
    if (!status.ok()) {
      // Give the cached memory back to the upstream and try once more.
      lock.unlock();
      ReleaseAll();
      lock.lock();
      block = heap_.Take(bytes);
      if (block == nullptr) {
        absl::Status retry = Grow(bytes, tag, stream);
        if (!retry.ok()) {
          return absl::ResourceExhaustedError(absl::StrCat(
              retry.message(), " (after returning cached memory)"));
        }
      }
    }
    if (block == nullptr) block = heap_.Take(bytes);
    if (block == nullptr) {
      return absl::InternalError(absl::StrFormat(
          "%s: no free block of %d bytes after reserving a segment", name(),
          bytes));
    }
  }
  if (block->tag != BlockHeap::kNoTag && block->tag != tag) {
    absl::Status status = ordering_->OrderAfter(
        stream, reinterpret_cast<StreamHandle>(block->tag));
    if (!status.ok()) {
      heap_.Give(block, block->tag);
      return status;
    }
  }
  return block;
}

absl::Status PoolAllocator::Grow(size_t bytes, uintptr_t tag,
                                 StreamHandle stream) {
  // Upstreams that cannot align to a page (cudaMalloc: 256 B) get asked for
  // a little more and the segment starts at the first page boundary.
  const size_t alignment = std::min(kPageSize, upstream_->max_alignment());
  const size_t slack = kPageSize - alignment;
  // What the pool may reserve: the peak in use, or what is in use plus this
  // request if that is more, and an eighth on top.
  const InUse in_use = CountInUse();
  const int64_t needed =
      std::max(in_use.peak, in_use.now + static_cast<int64_t>(bytes));
  const int64_t target = needed + needed / kHeadroomDivisor;
  if (reserved_ + static_cast<int64_t>(bytes + slack) > target) {
    // Every free segment is smaller than `bytes` (the heap found no fit):
    // the request cannot use them, so they go back before more is reserved.
    ReleaseFreeSegments(/*synchronize=*/true);
  }
  size_t segment = bytes;
  const int64_t room = target - reserved_ - static_cast<int64_t>(slack);
  if (room > static_cast<int64_t>(bytes)) {
    segment = std::min(PreferredSegmentBytes(bytes),
                       static_cast<size_t>(room) / kPageSize * kPageSize);
    segment = std::max(segment, bytes);
  }
  const size_t headroom =
      max_reserved_bytes_ - std::min<size_t>(max_reserved_bytes_, reserved_);
  if (segment + slack > headroom) segment = bytes;
  if (segment + slack > headroom) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "%s: cannot allocate %d bytes: %d of the %d-byte limit are reserved",
        name(), bytes, reserved_, max_reserved_bytes_));
  }
  absl::StatusOr<void*> raw =
      upstream_->Allocate(segment + slack, alignment, stream);
  if (!raw.ok() && segment > bytes) {
    segment = bytes;  // The preferred size failed; the request alone may not.
    raw = upstream_->Allocate(segment + slack, alignment, stream);
  }
  if (!raw.ok()) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "%s: cannot allocate %d bytes: the upstream refused %d bytes (%s)",
        name(), bytes, segment + slack, raw.status().message()));
  }
  const uintptr_t base = RoundUp(reinterpret_cast<uintptr_t>(*raw), kPageSize);
  segments_[base] = Segment{*raw, segment + slack, alignment};
  reserved_ += static_cast<int64_t>(segment + slack);
  peak_reserved_ = std::max(peak_reserved_, reserved_);
  ++misses_;
  // A stream-ordered upstream (cudaMallocAsync) makes a fresh segment ready
  // on `stream` only, so it is tagged like a block freed there.
  heap_.AddSegment(base, segment, tag);
  return absl::OkStatus();
}

PoolAllocator::InUse PoolAllocator::CountInUse() const {
  InUse total{shared_in_use_, shared_peak_};
  for (const auto& slot : shards_) {
    const Shard* shard = slot.load(std::memory_order_acquire);
    if (shard == nullptr) continue;
    total.now += shard->in_use.load(std::memory_order_relaxed);
    total.peak += shard->peak_in_use.load(std::memory_order_relaxed);
  }
  return total;
}

size_t PoolAllocator::ReleaseFreeSegments(bool synchronize) {
  if (heap_.CountFreeSegments() == 0) return 0;
  // Memory freed on a stream goes back only once no stream still uses it.
  if (ordering_ != nullptr && heap_.AnyFreeSegmentTagged()) {
    if (!synchronize || !ordering_->SynchronizeAll().ok()) return 0;
    heap_.ClearTags();
  }
  size_t released = 0;
  heap_.ReleaseFreeSegments([&](uintptr_t start, size_t /*bytes*/) {
    auto it = segments_.find(start);
    const Segment segment = it->second;
    segments_.erase(it);
    upstream_->Deallocate(segment.raw, segment.raw_bytes, segment.alignment,
                          kDefaultStream);
    reserved_ -= static_cast<int64_t>(segment.raw_bytes);
    released += segment.raw_bytes;
  });
  return released;
}

void PoolAllocator::RecycleSpan(Span* span) {
  // Before the fields change: a thread whose hint names this span sees the
  // new generation and looks the address up instead.
  span->generation.store(span->generation.load(std::memory_order_relaxed) + 1,
                         std::memory_order_release);
  span->block = nullptr;
  span->lines.reset();
  spare_spans_.push_back(span);
}

PoolAllocator::Span* PoolAllocator::NewSpan() {
  if (!spare_spans_.empty()) {
    Span* span = spare_spans_.back();
    spare_spans_.pop_back();
    return span;
  }
  span_storage_.emplace_back();
  return &span_storage_.back();
}

absl::StatusOr<void*> PoolAllocator::AllocateLarge(Shard* shard, size_t bytes,
                                                   uintptr_t tag,
                                                   StreamHandle stream) {
  const size_t rounded = RoundUp(bytes, kPageSize);
  CachedLarge flushed[kLargeCacheEntries];
  int num_flushed = 0;
  if (shard != nullptr) {
    for (int i = shard->large_count; i-- > 0;) {
      const CachedLarge cached = shard->large[i];
      if (cached.span->bytes == rounded &&
          (cached.tag == tag || cached.tag == BlockHeap::kNoTag)) {
        std::copy(shard->large + i + 1, shard->large + shard->large_count,
                  shard->large + i);
        --shard->large_count;
        cached.span->large_state.store(kLive, std::memory_order_relaxed);
        shard->CountAllocation(bytes);
        return reinterpret_cast<void*>(cached.span->start);
      }
    }
    // No exact fit: this thread's cached large blocks go back to the heap,
    // where they merge with their neighbours and may serve this request.
    std::copy(shard->large, shard->large + shard->large_count, flushed);
    num_flushed = shard->large_count;
    shard->large_count = 0;
  }
  Span* span;
  {
    std::unique_lock<std::mutex> lock(central_mutex_);
    for (int i = 0; i < num_flushed; ++i) {
      ReleaseLargeSpan(flushed[i].span, flushed[i].tag);
    }
    absl::StatusOr<BlockHeap::Block*> block =
        TakeBlock(lock, rounded, tag, stream);
    if (!block.ok()) return block.status();
    span = NewSpan();
    span->block = *block;
    span->start = (*block)->start;
    span->bytes = rounded;
    span->size_class = -1;
    span->large_state.store(kLive, std::memory_order_relaxed);
    page_map_.Set(span->start, span);
    if (shard == nullptr) {
      shared_in_use_ += static_cast<int64_t>(bytes);
      shared_peak_ = std::max(shared_peak_, shared_in_use_);
      ++shared_allocations_;
    }
  }
  if (shard != nullptr) shard->CountAllocation(bytes);
  return reinterpret_cast<void*>(span->start);
}

void PoolAllocator::DoDeallocate(void* ptr, size_t bytes, size_t alignment,
                                 StreamHandle stream) noexcept {
  const uintptr_t address = reinterpret_cast<uintptr_t>(ptr);
  const int size_class = ClassFor(bytes, alignment);
  Shard* const shard = ThisShard();
  if (ABSL_PREDICT_TRUE(size_class >= 0 && shard != nullptr)) {
    // The span of the block this thread last freed in this class, unless
    // that span went back to the heap since (its generation moved on). Only
    // the address depends on the pointer, so the checks below wait for one
    // multiplication and one load instead of a walk of the page map.
    FreeList& list = shard->lists[size_class];
    if (ABSL_PREDICT_TRUE(
            address - list.hint_start < list.hint_bytes &&
            list.hint_span->generation.load(std::memory_order_acquire) ==
                list.hint_generation)) {
      PushFreed(*shard, list, list.hint_span, ptr, bytes, TagFor(stream));
      return;
    }
  }
  DeallocateSlow(shard, size_class, ptr, bytes, alignment, stream);
}

void PoolAllocator::DeallocateSlow(Shard* shard, int size_class, void* ptr,
                                   size_t bytes, size_t alignment,
                                   StreamHandle stream) {
  const uintptr_t address = reinterpret_cast<uintptr_t>(ptr);
  Span* const span = static_cast<Span*>(page_map_.Get(address));
  if (ABSL_PREDICT_FALSE(span == nullptr)) DieNotOurs(ptr, bytes);
  if (span->size_class < 0) {
    DeallocateLarge(shard, span, ptr, bytes, alignment, TagFor(stream));
    return;
  }
  if (ABSL_PREDICT_FALSE(size_class != span->size_class)) {
    // Checked after the block's position, which names the real culprit
    // when the pointer is not a block start.
    BlockState(span, ptr, bytes);
    DieSizeMismatch(ptr, bytes, alignment, span->object_size);
  }
  if (ABSL_PREDICT_FALSE(shard == nullptr)) {
    std::atomic<uint8_t>* const state = FreeState(span, ptr, bytes);
    DeallocateShared(size_class, CachedBlock{ptr, state, TagFor(stream)},
                     bytes);
    return;
  }
  FreeList& list = shard->lists[size_class];
  // Read while the block is still live, so the span cannot go back to the
  // heap in between.
  list.hint_span = span;
  list.hint_start = span->start;
  list.hint_bytes = span->bytes;
  list.hint_generation = span->generation.load(std::memory_order_relaxed);
  PushFreed(*shard, list, span, ptr, bytes, TagFor(stream));
}

inline std::atomic<uint8_t>* PoolAllocator::BlockState(Span* span, void* ptr,
                                                       size_t bytes) const {
  const uint64_t offset = reinterpret_cast<uintptr_t>(ptr) - span->start;
  const uint32_t index = static_cast<uint32_t>((offset * span->magic) >> 32);
  if (ABSL_PREDICT_FALSE(uint64_t{index} * span->object_size != offset ||
                         index >= span->num_objects)) {
    if (index >= span->num_objects) DieNotOurs(ptr, bytes);
    DieInterior(ptr, bytes, span->start + uint64_t{index} * span->object_size,
                span->object_size);
  }
  return span->State(index);
}

inline std::atomic<uint8_t>* PoolAllocator::FreeState(Span* span, void* ptr,
                                                      size_t bytes) const {
  std::atomic<uint8_t>* const state = BlockState(span, ptr, bytes);
  // The exchange, not a load and a store: of two threads freeing the same
  // block at once, exactly one sees it live.
  if (ABSL_PREDICT_FALSE(state->exchange(kFree, std::memory_order_acq_rel) !=
                         kLive)) {
    DieDoubleFree(ptr, bytes);
  }
  return state;
}

inline void PoolAllocator::PushFreed(Shard& shard, FreeList& list, Span* span,
                                     void* ptr, size_t bytes, uintptr_t tag) {
  std::atomic<uint8_t>* const state = FreeState(span, ptr, bytes);
  if (ABSL_PREDICT_FALSE(list.size == list.capacity)) {
    FlushBatch(shard, span->size_class);
  }
  CachedBlock& slot = list.items[list.size++];
  slot.ptr = ptr;
  slot.state = state;
  slot.tag = tag;
  shard.CountDeallocation(bytes);
}

void PoolAllocator::DeallocateShared(int size_class, const CachedBlock& block,
                                     size_t bytes) {
  std::lock_guard<std::mutex> lock(central_mutex_);
  central_lists_[size_class].push_back(block);
  shared_in_use_ -= static_cast<int64_t>(bytes);
  ++shared_deallocations_;
}

void PoolAllocator::FlushBatch(Shard& shard, int size_class) {
  FreeList& list = shard.lists[size_class];
  const int count = std::min<int>(kSizeClasses[size_class].batch, list.size);
  ReturnToCentral(size_class, list.items, count);
  std::copy(list.items + count, list.items + list.size, list.items);
  list.size -= count;
}

void PoolAllocator::DeallocateLarge(Shard* shard, Span* span, void* ptr,
                                    size_t bytes, size_t alignment,
                                    uintptr_t tag) {
  if (ABSL_PREDICT_FALSE(reinterpret_cast<uintptr_t>(ptr) != span->start)) {
    DieInterior(ptr, bytes, span->start, span->bytes);
  }
  if (ABSL_PREDICT_FALSE(RoundUp(bytes, kPageSize) != span->bytes ||
                         ClassFor(bytes, alignment) >= 0)) {
    DieSizeMismatch(ptr, bytes, alignment, span->bytes);
  }
  if (ABSL_PREDICT_FALSE(span->large_state.exchange(
                             kFree, std::memory_order_acq_rel) != kLive)) {
    DieDoubleFree(ptr, bytes);
  }
  if (ABSL_PREDICT_FALSE(shard == nullptr)) {
    std::lock_guard<std::mutex> lock(central_mutex_);
    ReleaseLargeSpan(span, tag);
    shared_in_use_ -= static_cast<int64_t>(bytes);
    ++shared_deallocations_;
    return;
  }
  shard->CountDeallocation(bytes);
  if (ABSL_PREDICT_FALSE(shard->large_count == kLargeCacheEntries)) {
    const CachedLarge evicted = shard->large[0];
    std::copy(shard->large + 1, shard->large + shard->large_count,
              shard->large);
    --shard->large_count;
    std::lock_guard<std::mutex> lock(central_mutex_);
    ReleaseLargeSpan(evicted.span, evicted.tag);
  }
  shard->large[shard->large_count++] = CachedLarge{span, tag};
}

void PoolAllocator::ReleaseLargeSpan(Span* span, uintptr_t tag) {
  page_map_.Set(span->start, nullptr);
  heap_.Give(span->block, tag);
  RecycleSpan(span);
}

void PoolAllocator::ReturnToCentral(int size_class, const CachedBlock* blocks,
                                    int count) {
  std::lock_guard<std::mutex> lock(central_mutex_);
  central_lists_[size_class].insert(central_lists_[size_class].end(), blocks,
                                    blocks + count);
}

void PoolAllocator::DrainShard(Shard& shard, std::vector<CachedBlock>* small,
                               std::vector<CachedLarge>* large) {
  for (int c = 0; c < kNumSizeClasses; ++c) {
    FreeList& list = shard.lists[c];
    small[c].insert(small[c].end(), list.items, list.items + list.size);
    list.size = 0;
  }
  large->insert(large->end(), shard.large, shard.large + shard.large_count);
  shard.large_count = 0;
  shard.flush_requested.store(false, std::memory_order_relaxed);
}

void PoolAllocator::FlushShard(Shard& shard) {
  std::vector<CachedBlock> small[kNumSizeClasses];
  std::vector<CachedLarge> large;
  DrainShard(shard, small, &large);
  ReleaseDrained(small, large);
}

size_t PoolAllocator::DoReleaseCached() { return ReleaseAll(); }

size_t PoolAllocator::ReleaseAll() {
  std::vector<CachedBlock> small[kNumSizeClasses];
  std::vector<CachedLarge> large;
  // This thread's shard is its own; a thread that exited left its index
  // free, and leasing it makes its shard ours for the moment. A running
  // thread keeps its shard and flushes it at its next call.
  const int own = memory_internal::ThisThreadIndex();
  for (int index = 0; index < kMaxShards; ++index) {
    Shard* shard = shards_[index].load(std::memory_order_acquire);
    if (shard == nullptr) continue;
    if (index == own) {
      DrainShard(*shard, small, &large);
    } else if (memory_internal::TryLeaseThreadIndex(index)) {
      DrainShard(*shard, small, &large);
      memory_internal::ReleaseLeasedThreadIndex(index);
    } else {
      shard->flush_requested.store(true, std::memory_order_relaxed);
    }
  }
  return ReleaseDrained(small, large);
}

size_t PoolAllocator::ReleaseDrained(std::vector<CachedBlock>* small,
                                     const std::vector<CachedLarge>& large) {
  std::lock_guard<std::mutex> lock(central_mutex_);
  // Blocks freed on different streams may only merge, and memory may only
  // go back to the upstream, once no stream still uses them.
  bool synchronized = true;
  if (ordering_ != nullptr) synchronized = ordering_->SynchronizeAll().ok();
  for (const CachedLarge& cached : large) {
    ReleaseLargeSpan(cached.span,
                     synchronized ? BlockHeap::kNoTag : cached.tag);
  }
  for (int c = 0; c < kNumSizeClasses; ++c) {
    std::vector<CachedBlock>& list = central_lists_[c];
    list.insert(list.end(), small[c].begin(), small[c].end());
    if (!synchronized) continue;
    // A span whose blocks are all cached goes back to the heap.
    for (CachedBlock& cached : list) {
      cached.tag = BlockHeap::kNoTag;
      ++static_cast<Span*>(
            page_map_.Get(reinterpret_cast<uintptr_t>(cached.ptr)))
            ->scratch;
    }
    std::vector<CachedBlock> kept;
    for (const CachedBlock& cached : list) {
      Span* span = static_cast<Span*>(
          page_map_.Get(reinterpret_cast<uintptr_t>(cached.ptr)));
      if (span->scratch != span->num_objects) kept.push_back(cached);
    }
    for (const CachedBlock& cached : list) {
      Span* span = static_cast<Span*>(
          page_map_.Get(reinterpret_cast<uintptr_t>(cached.ptr)));
      if (span == nullptr) continue;  // Released through an earlier block.
      if (span->scratch == span->num_objects) {
        page_map_.SetRange(span->start, span->bytes, nullptr);
        heap_.Give(span->block, BlockHeap::kNoTag);
        RecycleSpan(span);
      }
      span->scratch = 0;
    }
    list.swap(kept);
  }
  if (!synchronized) return 0;
  heap_.ClearTags();
  return ReleaseFreeSegments(/*synchronize=*/false);
}

void PoolAllocator::ReleaseEverything() {
  std::lock_guard<std::mutex> lock(central_mutex_);
  // Live blocks die with the pool; only their streams must be done.
  if (ordering_ != nullptr) ordering_->SynchronizeAll().IgnoreError();
  for (const auto& entry : segments_) {
    upstream_->Deallocate(entry.second.raw, entry.second.raw_bytes,
                          entry.second.alignment, kDefaultStream);
    reserved_ -= static_cast<int64_t>(entry.second.raw_bytes);
  }
  segments_.clear();
}

AllocatorStats PoolAllocator::DoGetStats() const {
  AllocatorStats stats;
  for (const auto& slot : shards_) {
    const Shard* shard = slot.load(std::memory_order_acquire);
    if (shard == nullptr) continue;
    stats.allocation_count +=
        shard->allocations.load(std::memory_order_relaxed);
    stats.deallocation_count +=
        shard->deallocations.load(std::memory_order_relaxed);
  }
  std::lock_guard<std::mutex> lock(central_mutex_);
  const InUse in_use = CountInUse();
  stats.bytes_in_use = in_use.now;
  stats.peak_bytes_in_use = in_use.peak;
  stats.allocation_count += shared_allocations_;
  stats.deallocation_count += shared_deallocations_;
  stats.bytes_reserved = reserved_;
  stats.peak_bytes_reserved = peak_reserved_;
  stats.pool_misses = misses_;
  stats.pool_hits = stats.allocation_count - misses_;
  return stats;
}

void PoolAllocator::DieNotOurs(void* ptr, size_t bytes) const {
  Fatal(absl::StrFormat(
      "%s: Deallocate(%p, %d bytes): the pointer was not allocated by this "
      "pool, or its memory was already returned to the upstream",
      name(), ptr, bytes));
}

void PoolAllocator::DieInterior(void* ptr, size_t bytes, uintptr_t block,
                                size_t block_bytes) const {
  Fatal(absl::StrFormat(
      "%s: Deallocate(%p, %d bytes): the pointer is inside the %d-byte block "
      "at %p, not at its start",
      name(), ptr, bytes, block_bytes, reinterpret_cast<void*>(block)));
}

void PoolAllocator::DieSizeMismatch(void* ptr, size_t bytes, size_t alignment,
                                    size_t block_bytes) const {
  Fatal(absl::StrFormat(
      "%s: Deallocate(%p, %d bytes, alignment %d): size mismatch, the block "
      "at that address has %d bytes",
      name(), ptr, bytes, alignment, block_bytes));
}

void PoolAllocator::DieDoubleFree(void* ptr, size_t bytes) const {
  Fatal(absl::StrFormat(
      "%s: Deallocate(%p, %d bytes): double free, the block is not allocated",
      name(), ptr, bytes));
}

}  // namespace memory
}  // namespace dilated
