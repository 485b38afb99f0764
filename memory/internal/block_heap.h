// File: internal/block_heap.h
//
// BlockHeap: best-fit allocation with splitting and coalescing over address
// ranges (segments) that the owner reserved elsewhere. It never touches the
// memory it manages, so it serves host and device memory alike, and it is not
// thread-safe (the pool calls it under its central lock).
//
//   BlockHeap heap(/*granularity=*/64 << 10);
//   heap.AddSegment(base, 2 << 20);
//   BlockHeap::Block* b = heap.Take(256 << 10);  // best fit, split
//   ...
//   heap.Give(b, tag);                           // merged with free neighbours
//
// Free blocks sit in segregated bins (exact bins for 1-64 granules, then
// eight bins per power of two, as in TLSF) with a bitmap of non-empty bins.
// Take scans the request's own bin for the smallest block that fits and, if
// none does, takes the smallest block of the next non-empty bin: that is the
// smallest free block of at least the requested size, i.e. best fit.
//
// Tags: every free block carries the tag of whoever freed it (the pool uses
// the stream). Neighbours merge only when their tags are equal or one of them
// is kNoTag (memory nobody used since it was reserved or since ClearTags), so
// a merged block never mixes the pending work of two streams.

#ifndef MEMORY_INTERNAL_BLOCK_HEAP_H_
#define MEMORY_INTERNAL_BLOCK_HEAP_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

namespace dilated {
namespace memory {
namespace memory_internal {

class BlockHeap {
 public:
  static constexpr uintptr_t kNoTag = ~uintptr_t{0};

  struct Block {
    uintptr_t start = 0;
    size_t size = 0;
    Block* prev = nullptr;  // Neighbours in address order, same segment.
    Block* next = nullptr;
    Block* prev_free = nullptr;  // Bin list links, while free.
    Block* next_free = nullptr;
    uintptr_t tag = kNoTag;
    bool free = false;
  };

  // REQUIRES: `granularity` is a power of two.
  explicit BlockHeap(size_t granularity);
  BlockHeap(const BlockHeap&) = delete;
  BlockHeap& operator=(const BlockHeap&) = delete;

  // Adds [start, start + size) as one free block tagged `tag`.
  // REQUIRES: start and size are multiples of the granularity, size > 0, and
  // the range overlaps no other segment.
  void AddSegment(uintptr_t start, size_t size, uintptr_t tag = kNoTag);

  // Returns the smallest free block of at least `size` bytes, or nullptr.
  // The block leaves the free bins; if it is at least one granule larger
  // than `size` it is split and the rest stays free with the same tag. The
  // returned block keeps its tag: the caller must order its use after that
  // tag's work.
  // REQUIRES: `size` is a positive multiple of the granularity.
  Block* Take(size_t size);

  // Returns `block` (from Take) to the free bins with `tag`, merged with its
  // free neighbours whose tags are compatible.
  void Give(Block* block, uintptr_t tag);

  // Sets the tag of every free block to kNoTag and merges all free
  // neighbours. Call it once nothing tagged is pending any more.
  void ClearTags();

  // Removes every segment that is one free block and calls
  // release(start, size) for each; returns the bytes removed.
  template <typename Release>
  size_t ReleaseFreeSegments(Release release);

  // Returns the number of segments that are one free block (what
  // ReleaseFreeSegments would remove), and whether any of them has a tag.
  // Linear in the number of segments.
  size_t CountFreeSegments() const;
  bool AnyFreeSegmentTagged() const;

  // Returns the bytes of all segments, of the free blocks, and the number of
  // free blocks.
  size_t total_bytes() const { return total_bytes_; }
  size_t free_bytes() const { return free_bytes_; }
  size_t free_blocks() const { return free_blocks_; }
  size_t granularity() const { return granularity_; }

  // Returns "" if every invariant holds (blocks tile their segments, free
  // blocks sit in the right bin, no two compatible free neighbours, counters
  // add up), else a description of the first broken one. For tests.
  std::string Validate() const;

 private:
  // Exact bins for 1..64 granules, then 8 per power of two up to 2^63.
  static constexpr int kExactBins = 64;
  static constexpr int kNumBins = kExactBins + 8 * (64 - 6);
  static constexpr int kBitmapWords = (kNumBins + 63) / 64;

  static int BinFor(uint64_t granules);
  static bool Compatible(uintptr_t a, uintptr_t b) {
    return a == b || a == kNoTag || b == kNoTag;
  }

  Block* NewBlock();
  void RecycleBlock(Block* block);
  void InsertFree(Block* block);
  void RemoveFree(Block* block);
  // Merges `block` (free, not in a bin) with compatible free neighbours and
  // returns the merged block, still out of the bins.
  Block* Merge(Block* block);
  int NextNonEmptyBin(int from) const;

  const size_t granularity_;
  const int shift_;
  Block* bins_[kNumBins] = {};
  uint64_t bitmap_[kBitmapWords] = {};
  std::vector<Block*> segments_;  // First block of each segment.
  std::deque<Block> storage_;     // Stable addresses for descriptors.
  std::vector<Block*> spare_;     // Recycled descriptors.
  size_t total_bytes_ = 0;
  size_t free_bytes_ = 0;
  size_t free_blocks_ = 0;
};

template <typename Release>
size_t BlockHeap::ReleaseFreeSegments(Release release) {
  size_t released = 0;
  for (size_t i = 0; i < segments_.size();) {
    Block* head = segments_[i];
    if (head->free && head->next == nullptr) {
      RemoveFree(head);
      total_bytes_ -= head->size;
      released += head->size;
      release(head->start, head->size);
      RecycleBlock(head);
      segments_[i] = segments_.back();
      segments_.pop_back();
    } else {
      ++i;
    }
  }
  return released;
}

}  // namespace memory_internal
}  // namespace memory
}  // namespace dilated

#endif  // MEMORY_INTERNAL_BLOCK_HEAP_H_
