// Compile-time checks of the size-class table in size_classes.h.
#include "memory/size_classes.h"

namespace dilated {
namespace memory {
namespace {

constexpr bool StrictlyIncreasingMultiplesOf64() {
  for (int c = 0; c < kNumSizeClasses; ++c) {
    if (kSizeClasses[c].bytes % 64 != 0) return false;
    if (c > 0 && kSizeClasses[c].bytes <= kSizeClasses[c - 1].bytes) {
      return false;
    }
  }
  return true;
}

constexpr bool SpansHoldAtLeastOneBlockWithSmallTail() {
  for (const SizeClassInfo& info : kSizeClasses) {
    const size_t span = info.span_pages * kPageSize;
    if (span < info.bytes) return false;
    const size_t tail = span % info.bytes;
    if (tail * 8 > span) return false;       // At most 1/8 of the span unused.
    if (info.span_pages > 32) return false;  // Span offsets fit DivisionMagic.
  }
  return true;
}

constexpr bool BatchesInRange() {
  for (const SizeClassInfo& info : kSizeClasses) {
    if (info.batch < 1 || info.batch > kMaxBatch) return false;
  }
  return true;
}

// SizeClassFor is computed; check it against the table at every class edge:
// the sizes (previous class, this class] map to this class, one byte more
// maps to the next.
constexpr bool LookupMatchesTableAtEdges() {
  for (int c = 0; c < kNumSizeClasses; ++c) {
    const size_t previous = c == 0 ? 0 : kSizeClasses[c - 1].bytes;
    const size_t bytes = kSizeClasses[c].bytes;
    if (SizeClassFor(previous + 1) != c || SizeClassFor(bytes) != c) {
      return false;
    }
    const int next = c + 1 < kNumSizeClasses ? c + 1 : -1;
    if (SizeClassFor(bytes + 1) != next) return false;
  }
  return true;
}

// The last class is kMaxSmallSize, and each class after the 64-byte steps is
// at most 1.25x the one before it (the 20% waste bound of the header).
constexpr bool GrowthBounded() {
  if (kSizeClasses[kNumSizeClasses - 1].bytes != kMaxSmallSize) return false;
  for (int c = 1; c < kNumSizeClasses; ++c) {
    if (kSizeClasses[c].bytes * 4 > kSizeClasses[c - 1].bytes * 5 &&
        kSizeClasses[c].bytes - kSizeClasses[c - 1].bytes > 64) {
      return false;
    }
  }
  return true;
}

static_assert(kNumSizeClasses == 56, "16 steps of 64 B + 4 x 10 doublings");
static_assert(StrictlyIncreasingMultiplesOf64(), "classes");
static_assert(SpansHoldAtLeastOneBlockWithSmallTail(), "span_pages");
static_assert(BatchesInRange(), "batch");
static_assert(LookupMatchesTableAtEdges(), "SizeClassFor");
static_assert(GrowthBounded(), "spacing");
static_assert(SizeClassFor(0) == -1, "zero bytes has no class");
static_assert(SizeClassFor(kMaxSmallSize + 1) == -1, "large");
static_assert(SizeClassFor(100, 4096) == 23, "4 KiB-aligned 100 B -> 4096");
static_assert(SizeClassFor(1300, 256) == 17, "256-aligned 1300 B -> 1536");

}  // namespace
}  // namespace memory
}  // namespace dilated
