// File: heap_tracker.h
//
// Counts the bytes a process holds on the heap, with a resettable peak, by
// replacing the C allocation functions (malloc, free, calloc, realloc and the
// aligned variants) with counting wrappers around glibc's own. Every heap
// allocation is seen: operator new, Eigen's aligned buffers, the OpenMP
// runtime. Linking this library into a binary turns the counting on; it is
// meant for benchmarks only.
//
//   heap_tracker::ResetPeak();
//   RunSomething();
//   const int64_t extra = heap_tracker::PeakBytes() - baseline;

#ifndef BENCHMARKS_HEAP_TRACKER_H_
#define BENCHMARKS_HEAP_TRACKER_H_

#include <cstdint>

namespace dilated {
namespace heap_tracker {

// Returns the bytes currently allocated (usable sizes of live blocks).
int64_t CurrentBytes();

// Returns the highest CurrentBytes() since the last ResetPeak().
int64_t PeakBytes();

// Sets the peak to the current value.
void ResetPeak();

}  // namespace heap_tracker
}  // namespace dilated

#endif  // BENCHMARKS_HEAP_TRACKER_H_
