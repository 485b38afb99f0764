// device_copy.h for a build without CUDA: there are no device buffers to
// copy, so every call says so.

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "base/device.h"
#include "distributed/internal/device_copy.h"

namespace dilated {
namespace distributed {
namespace internal {
namespace {

absl::Status NoCuda(absl::string_view what, const Device& device) {
  return absl::FailedPreconditionError(
      absl::StrCat(what, " on ", DeviceName(device),
                   ": this binary was built without CUDA (build with "
                   "--config=cuda for device buffers)"));
}

}  // namespace

absl::Status CopyAsync(void*, const void*, size_t, const Device& device,
                       void*) {
  return NoCuda("a copy", device);
}

absl::Status SynchronizeStream(const Device& device, void*) {
  return NoCuda("a stream synchronisation", device);
}

absl::StatusOr<void*> AllocatePinned(size_t) {
  return absl::FailedPreconditionError(
      "staging device buffers through pinned host memory: this binary was "
      "built without CUDA (build with --config=cuda for device buffers)");
}

void FreePinned(void*) {}

}  // namespace internal
}  // namespace distributed
}  // namespace dilated
