// File: size_classes.h
//
// The size classes of PoolAllocator: every request of at most kMaxSmallSize
// bytes is rounded up to one of 56 sizes, and freed blocks of a class are
// kept for the next request of the same class. Like tcmalloc's
// size_classes.cc, the classes are a table of data with commented columns,
// checked by static_asserts in size_classes.cc and by size_classes_test.cc.
//
//   int c = SizeClassFor(1000);          // 15
//   size_t rounded = kSizeClasses[c].bytes;  // 1024
//
// Spacing: 64-byte steps up to 1 KiB, then four classes per power of two
// (x1.25, x1.5, x1.75, x2), so the rounding wastes at most 20% of a request
// above 1 KiB and less than 64 bytes below it. Every class is a multiple of
// 64 bytes, so every block is 64-byte aligned.

#ifndef MEMORY_SIZE_CLASSES_H_
#define MEMORY_SIZE_CLASSES_H_

#include <cstddef>
#include <cstdint>

namespace dilated {
namespace memory {

// Pool pages are 64 KiB: the unit of the pool's address map and of its large
// blocks (large requests round up to whole pages).
inline constexpr int kPageShift = 16;
inline constexpr size_t kPageSize = size_t{1} << kPageShift;

// Requests up to 1 MiB use size classes (PyTorch's kSmallSize is the same).
inline constexpr size_t kMaxSmallSize = size_t{1} << 20;

// The most blocks moved at once between a thread's cache and the shared
// lists.
inline constexpr int kMaxBatch = 64;

struct SizeClassInfo {
  uint32_t bytes;       // Block size.
  uint16_t span_pages;  // Pages carved into blocks of this class at a time.
  uint16_t batch;       // Blocks moved between a thread cache and the
                        // shared list at a time (64 KiB worth, 1 to 64).
};

// span_pages is the smallest page count whose unused tail is at most 1/8 of
// the span; the comment gives blocks per span and that tail.
inline constexpr SizeClassInfo kSizeClasses[] = {
    // bytes, pages, batch
    {64, 1, 64},       // 1024 blocks,  0.0% tail
    {128, 1, 64},      //  512 blocks,  0.0% tail
    {192, 1, 64},      //  341 blocks,  0.1% tail
    {256, 1, 64},      //  256 blocks,  0.0% tail
    {320, 1, 64},      //  204 blocks,  0.4% tail
    {384, 1, 64},      //  170 blocks,  0.4% tail
    {448, 1, 64},      //  146 blocks,  0.2% tail
    {512, 1, 64},      //  128 blocks,  0.0% tail
    {576, 1, 64},      //  113 blocks,  0.7% tail
    {640, 1, 64},      //  102 blocks,  0.4% tail
    {704, 1, 64},      //   93 blocks,  0.1% tail
    {768, 1, 64},      //   85 blocks,  0.4% tail
    {832, 1, 64},      //   78 blocks,  1.0% tail
    {896, 1, 64},      //   73 blocks,  0.2% tail
    {960, 1, 64},      //   68 blocks,  0.4% tail
    {1024, 1, 64},     //   64 blocks,  0.0% tail
    {1280, 1, 51},     //   51 blocks,  0.4% tail
    {1536, 1, 42},     //   42 blocks,  1.6% tail
    {1792, 1, 36},     //   36 blocks,  1.6% tail
    {2048, 1, 32},     //   32 blocks,  0.0% tail
    {2560, 1, 25},     //   25 blocks,  2.3% tail
    {3072, 1, 21},     //   21 blocks,  1.6% tail
    {3584, 1, 18},     //   18 blocks,  1.6% tail
    {4096, 1, 16},     //   16 blocks,  0.0% tail
    {5120, 1, 12},     //   12 blocks,  6.2% tail
    {6144, 1, 10},     //   10 blocks,  6.2% tail
    {7168, 1, 9},      //    9 blocks,  1.6% tail
    {8192, 1, 8},      //    8 blocks,  0.0% tail
    {10240, 1, 6},     //    6 blocks,  6.2% tail
    {12288, 1, 5},     //    5 blocks,  6.2% tail
    {14336, 1, 4},     //    4 blocks, 12.5% tail
    {16384, 1, 4},     //    4 blocks,  0.0% tail
    {20480, 1, 3},     //    3 blocks,  6.2% tail
    {24576, 2, 2},     //    5 blocks,  6.2% tail
    {28672, 1, 2},     //    2 blocks, 12.5% tail
    {32768, 1, 2},     //    2 blocks,  0.0% tail
    {40960, 2, 1},     //    3 blocks,  6.2% tail
    {49152, 3, 1},     //    4 blocks,  0.0% tail
    {57344, 1, 1},     //    1 block,  12.5% tail
    {65536, 1, 1},     //    1 block,   0.0% tail
    {81920, 4, 1},     //    3 blocks,  6.2% tail
    {98304, 3, 1},     //    2 blocks,  0.0% tail
    {114688, 2, 1},    //    1 block,  12.5% tail
    {131072, 2, 1},    //    1 block,   0.0% tail
    {163840, 5, 1},    //    2 blocks,  0.0% tail
    {196608, 3, 1},    //    1 block,   0.0% tail
    {229376, 4, 1},    //    1 block,  12.5% tail
    {262144, 4, 1},    //    1 block,   0.0% tail
    {327680, 5, 1},    //    1 block,   0.0% tail
    {393216, 6, 1},    //    1 block,   0.0% tail
    {458752, 7, 1},    //    1 block,   0.0% tail
    {524288, 8, 1},    //    1 block,   0.0% tail
    {655360, 10, 1},   //    1 block,   0.0% tail
    {786432, 12, 1},   //    1 block,   0.0% tail
    {917504, 14, 1},   //    1 block,   0.0% tail
    {1048576, 16, 1},  //    1 block,   0.0% tail
};

inline constexpr int kNumSizeClasses =
    static_cast<int>(sizeof(kSizeClasses) / sizeof(kSizeClasses[0]));

// Returns the smallest class of at least `bytes` bytes, or -1 when `bytes` is
// 0 or larger than kMaxSmallSize. Computed, not searched: classes 0-15 are
// 64-byte steps, then four per power of two.
constexpr int SizeClassFor(size_t bytes) {
  if (bytes <= 1024) return static_cast<int>((bytes + 63) >> 6) - 1;
  if (bytes > kMaxSmallSize) return -1;
  // 2^k < bytes <= 2^(k+1), k >= 10; each quarter of that range is a class.
  const int k =
      63 - __builtin_clzll(static_cast<unsigned long long>(bytes - 1));
  const int quarter_shift = k - 2;
  const size_t over = bytes - (size_t{1} << k);
  const int quarter = static_cast<int>(
      (over + (size_t{1} << quarter_shift) - 1) >> quarter_shift);  // 1..4
  return 16 + (k - 10) * 4 + quarter - 1;
}

// Returns the smallest class of at least `bytes` bytes whose size is a
// multiple of `alignment` (so that blocks carved from a page-aligned span are
// aligned), or -1 if there is none.
// REQUIRES: `alignment` is a power of two.
constexpr int SizeClassFor(size_t bytes, size_t alignment) {
  int c = SizeClassFor(bytes);
  if (alignment <= 64 || c < 0) return c;
  if (alignment > kPageSize) return -1;
  while (c < kNumSizeClasses && kSizeClasses[c].bytes % alignment != 0) ++c;
  return c < kNumSizeClasses ? c : -1;
}

// Returns m such that (n * m) >> 32 == n / d for every n < 2^32 / d that is
// a multiple of d (d * m = 2^32 + r with 0 < r <= d, so the error i * r / 2^32
// stays below 1 for i = n / d < 2^32 / d). The pool uses it to turn a block's
// offset in its span into an index without a division.
constexpr uint32_t DivisionMagic(uint32_t d) {
  return static_cast<uint32_t>((uint64_t{1} << 32) / d + 1);
}

}  // namespace memory
}  // namespace dilated

#endif  // MEMORY_SIZE_CLASSES_H_
