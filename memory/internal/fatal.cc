#include "memory/internal/fatal.h"

#include <cstdio>
#include <cstdlib>

namespace dilated {
namespace memory {
namespace memory_internal {

void Fatal(absl::string_view message) {
  std::fprintf(stderr, "dilated::memory: %.*s\n",
               static_cast<int>(message.size()), message.data());
  std::fflush(stderr);
  std::abort();
}

}  // namespace memory_internal
}  // namespace memory
}  // namespace dilated
