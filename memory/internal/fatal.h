// File: internal/fatal.h
//
// Fatal reports a misuse of an allocator (double free, foreign pointer, size
// mismatch) and aborts. These are programming errors, not bad input, so they
// are never turned into a Status that a caller could ignore and then corrupt
// memory with.

#ifndef MEMORY_INTERNAL_FATAL_H_
#define MEMORY_INTERNAL_FATAL_H_

#include "absl/strings/string_view.h"

namespace dilated {
namespace memory {
namespace memory_internal {

// Writes "dilated::memory: <message>" to stderr and aborts.
[[noreturn]] void Fatal(absl::string_view message);

}  // namespace memory_internal
}  // namespace memory
}  // namespace dilated

#endif  // MEMORY_INTERNAL_FATAL_H_
