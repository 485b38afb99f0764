#include "benchmarks/heap_tracker.h"

#include <malloc.h>

#include <atomic>
#include <cerrno>
#include <cstddef>

// glibc's allocator under its internal names; the public names below replace
// the library's (glibc supports replacing malloc this way).
extern "C" {
void* __libc_malloc(size_t size);
void __libc_free(void* ptr);
void* __libc_calloc(size_t count, size_t size);
void* __libc_realloc(void* ptr, size_t size);
void* __libc_memalign(size_t alignment, size_t size);
}

namespace dilated {
namespace heap_tracker {
namespace {

std::atomic<int64_t> current_bytes{0};
std::atomic<int64_t> peak_bytes{0};

void Add(void* ptr) {
  if (ptr == nullptr) return;
  const int64_t now =
      current_bytes.fetch_add(static_cast<int64_t>(malloc_usable_size(ptr))) +
      static_cast<int64_t>(malloc_usable_size(ptr));
  int64_t peak = peak_bytes.load(std::memory_order_relaxed);
  while (now > peak && !peak_bytes.compare_exchange_weak(peak, now)) {
  }
}

void Remove(void* ptr) {
  if (ptr == nullptr) return;
  current_bytes.fetch_sub(static_cast<int64_t>(malloc_usable_size(ptr)));
}

}  // namespace

int64_t CurrentBytes() { return current_bytes.load(); }
int64_t PeakBytes() { return peak_bytes.load(); }
void ResetPeak() { peak_bytes.store(current_bytes.load()); }

}  // namespace heap_tracker
}  // namespace dilated

using dilated::heap_tracker::Add;
using dilated::heap_tracker::Remove;

extern "C" {

void* malloc(size_t size) {
  void* ptr = __libc_malloc(size);
  Add(ptr);
  return ptr;
}

void free(void* ptr) {
  Remove(ptr);
  __libc_free(ptr);
}

void* calloc(size_t count, size_t size) {
  void* ptr = __libc_calloc(count, size);
  Add(ptr);
  return ptr;
}

void* realloc(void* ptr, size_t size) {
  Remove(ptr);
  void* result = __libc_realloc(ptr, size);
  // On failure the old block is still live.
  Add(result != nullptr || size == 0 ? result : ptr);
  return result;
}

void* memalign(size_t alignment, size_t size) {
  void* ptr = __libc_memalign(alignment, size);
  Add(ptr);
  return ptr;
}

void* aligned_alloc(size_t alignment, size_t size) {
  return memalign(alignment, size);
}

int posix_memalign(void** result, size_t alignment, size_t size) {
  void* ptr = memalign(alignment, size);
  if (ptr == nullptr) return ENOMEM;
  *result = ptr;
  return 0;
}

void* valloc(size_t size) { return memalign(4096, size); }

void* pvalloc(size_t size) {
  return memalign(4096, (size + 4095) / 4096 * 4096);
}

}  // extern "C"
