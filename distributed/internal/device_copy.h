// File: device_copy.h
//
// The CUDA runtime calls the host-side engines (single process, MPI) need for
// device buffers, behind plain functions so that those engines build without
// CUDA: a CUDA build links device_copy_cuda.cc, a CPU-only build
// device_copy_none.cc, whose functions return FailedPrecondition.

#ifndef DISTRIBUTED_INTERNAL_DEVICE_COPY_H_
#define DISTRIBUTED_INTERNAL_DEVICE_COPY_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/device.h"

namespace dilated {
namespace distributed {
namespace internal {

// Copies `bytes` from `src` to `dst` ordered on `stream` (a cudaStream_t),
// with `device` current; either side may be host memory or memory of that
// device. May return before the copy is done.
absl::Status CopyAsync(void* dst, const void* src, size_t bytes,
                       const Device& device, void* stream);

// Returns when the work on `stream` of `device` is done.
absl::Status SynchronizeStream(const Device& device, void* stream);

// Page-locked host memory, so that copies to and from the device run at full
// speed and asynchronously. FreePinned(nullptr) does nothing.
absl::StatusOr<void*> AllocatePinned(size_t bytes);
void FreePinned(void* pointer);

}  // namespace internal
}  // namespace distributed
}  // namespace dilated

#endif  // DISTRIBUTED_INTERNAL_DEVICE_COPY_H_
