#include "memory/internal/block_heap.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "memory/internal/fatal.h"

namespace dilated {
namespace memory {
namespace memory_internal {

BlockHeap::BlockHeap(size_t granularity)
    : granularity_(granularity),
      shift_(__builtin_ctzll(static_cast<unsigned long long>(granularity))) {
  if (granularity == 0 || (granularity & (granularity - 1)) != 0) {
    Fatal("BlockHeap: the granularity must be a power of two");
  }
}

int BlockHeap::BinFor(uint64_t granules) {
  if (granules <= kExactBins) return static_cast<int>(granules) - 1;
  const int k = 63 - __builtin_clzll(granules);  // k >= 6
  const int sub = static_cast<int>((granules >> (k - 3)) & 7);
  return kExactBins + (k - 6) * 8 + sub;
}

BlockHeap::Block* BlockHeap::NewBlock() {
  if (!spare_.empty()) {
    Block* block = spare_.back();
    spare_.pop_back();
    *block = Block();
    return block;
  }
  storage_.emplace_back();
  return &storage_.back();
}

void BlockHeap::RecycleBlock(Block* block) { spare_.push_back(block); }

void BlockHeap::InsertFree(Block* block) {
  const int bin = BinFor(block->size >> shift_);
  block->free = true;
  block->prev_free = nullptr;
  block->next_free = bins_[bin];
  if (bins_[bin] != nullptr) bins_[bin]->prev_free = block;
  bins_[bin] = block;
  bitmap_[bin >> 6] |= uint64_t{1} << (bin & 63);
  free_bytes_ += block->size;
  ++free_blocks_;
}

void BlockHeap::RemoveFree(Block* block) {
  const int bin = BinFor(block->size >> shift_);
  if (block->prev_free != nullptr) {
    block->prev_free->next_free = block->next_free;
  } else {
    bins_[bin] = block->next_free;
  }
  if (block->next_free != nullptr)
    block->next_free->prev_free = block->prev_free;
  if (bins_[bin] == nullptr) bitmap_[bin >> 6] &= ~(uint64_t{1} << (bin & 63));
  block->prev_free = block->next_free = nullptr;
  block->free = false;
  free_bytes_ -= block->size;
  --free_blocks_;
}

int BlockHeap::NextNonEmptyBin(int from) const {
  if (from >= kNumBins) return -1;
  int word = from >> 6;
  uint64_t bits = bitmap_[word] & (~uint64_t{0} << (from & 63));
  while (bits == 0) {
    if (++word >= kBitmapWords) return -1;
    bits = bitmap_[word];
  }
  return word * 64 + __builtin_ctzll(bits);
}

void BlockHeap::AddSegment(uintptr_t start, size_t size, uintptr_t tag) {
  if (size == 0 || ((start | size) & (granularity_ - 1)) != 0) {
    Fatal(absl::StrFormat(
        "BlockHeap: segment [%#x, +%d) is not a positive multiple of %d", start,
        size, granularity_));
  }
  Block* block = NewBlock();
  block->start = start;
  block->size = size;
  block->tag = tag;
  segments_.push_back(block);
  total_bytes_ += size;
  InsertFree(block);
}

BlockHeap::Block* BlockHeap::Take(size_t size) {
  const uint64_t granules = size >> shift_;
  int bin = BinFor(granules);
  Block* best = nullptr;
  // The request's own bin may hold blocks smaller than the request (log
  // bins span a range): pick the smallest that fits.
  for (Block* b = bins_[bin]; b != nullptr; b = b->next_free) {
    if (b->size >= size && (best == nullptr || b->size < best->size)) best = b;
  }
  if (best == nullptr) {
    // Every block of a later bin is larger than every size of this one.
    bin = NextNonEmptyBin(bin + 1);
    if (bin < 0) return nullptr;
    for (Block* b = bins_[bin]; b != nullptr; b = b->next_free) {
      if (best == nullptr || b->size < best->size) best = b;
    }
  }
  RemoveFree(best);
  if (best->size - size >= granularity_) {
    Block* rest = NewBlock();
    rest->start = best->start + size;
    rest->size = best->size - size;
    rest->tag = best->tag;
    rest->prev = best;
    rest->next = best->next;
    if (best->next != nullptr) best->next->prev = rest;
    best->next = rest;
    best->size = size;
    InsertFree(rest);
  }
  return best;
}

BlockHeap::Block* BlockHeap::Merge(Block* block) {
  Block* prev = block->prev;
  if (prev != nullptr && prev->free && Compatible(prev->tag, block->tag)) {
    RemoveFree(prev);
    if (prev->tag == kNoTag) prev->tag = block->tag;
    prev->size += block->size;
    prev->next = block->next;
    if (block->next != nullptr) block->next->prev = prev;
    RecycleBlock(block);
    block = prev;
  }
  Block* next = block->next;
  if (next != nullptr && next->free && Compatible(next->tag, block->tag)) {
    RemoveFree(next);
    if (block->tag == kNoTag) block->tag = next->tag;
    block->size += next->size;
    block->next = next->next;
    if (next->next != nullptr) next->next->prev = block;
    RecycleBlock(next);
  }
  return block;
}

void BlockHeap::Give(Block* block, uintptr_t tag) {
  if (block->free) {
    Fatal(absl::StrFormat("BlockHeap: block [%#x, +%d) given back twice",
                          block->start, block->size));
  }
  block->tag = tag;
  InsertFree(Merge(block));
}

void BlockHeap::ClearTags() {
  for (Block* head : segments_) {
    for (Block* b = head; b != nullptr;) {
      if (!b->free) {
        b = b->next;
        continue;
      }
      RemoveFree(b);
      b->tag = kNoTag;
      // Absorb every following free block (all compatible now).
      while (b->next != nullptr && b->next->free) {
        Block* next = b->next;
        RemoveFree(next);
        b->size += next->size;
        b->next = next->next;
        if (next->next != nullptr) next->next->prev = b;
        RecycleBlock(next);
      }
      InsertFree(b);
      b = b->next;
    }
  }
}

size_t BlockHeap::CountFreeSegments() const {
  size_t count = 0;
  for (const Block* head : segments_) {
    if (head->free && head->next == nullptr) ++count;
  }
  return count;
}

bool BlockHeap::AnyFreeSegmentTagged() const {
  for (const Block* head : segments_) {
    if (head->free && head->next == nullptr && head->tag != kNoTag) {
      return true;
    }
  }
  return false;
}

std::string BlockHeap::Validate() const {
  size_t total = 0, free_bytes = 0, free_blocks = 0;
  for (const Block* head : segments_) {
    if (head->prev != nullptr) return "a segment head has a predecessor";
    for (const Block* b = head; b != nullptr; b = b->next) {
      total += b->size;
      if (b->size == 0 || (b->size & (granularity_ - 1)) != 0) {
        return absl::StrFormat("block %#x has size %d", b->start, b->size);
      }
      if (b->next != nullptr) {
        if (b->next->prev != b) return "broken prev link";
        if (b->next->start != b->start + b->size) {
          return absl::StrFormat("blocks %#x and %#x do not tile", b->start,
                                 b->next->start);
        }
        if (b->free && b->next->free && Compatible(b->tag, b->next->tag)) {
          return absl::StrFormat("compatible free neighbours %#x and %#x",
                                 b->start, b->next->start);
        }
      }
      if (b->free) {
        ++free_blocks;
        free_bytes += b->size;
        const int bin = BinFor(b->size >> shift_);
        bool found = false;
        for (const Block* f = bins_[bin]; f != nullptr; f = f->next_free) {
          if (f == b) found = true;
        }
        if (!found) {
          return absl::StrFormat("free block %#x is not in bin %d", b->start,
                                 bin);
        }
      }
    }
  }
  if (total != total_bytes_) return "total_bytes does not add up";
  if (free_bytes != free_bytes_) return "free_bytes does not add up";
  if (free_blocks != free_blocks_) return "free_blocks does not add up";
  for (int bin = 0; bin < kNumBins; ++bin) {
    const bool bit = (bitmap_[bin >> 6] >> (bin & 63)) & 1;
    if (bit != (bins_[bin] != nullptr)) {
      return absl::StrFormat("bitmap bit %d is stale", bin);
    }
  }
  return "";
}

}  // namespace memory_internal
}  // namespace memory
}  // namespace dilated
