// File: block_lists_cuda.h
//
// The lists of active blocks of a BlockListStorage in a CUDA device's memory,
// as the block-sparse kernels read them: copied on the first request for a
// device and kept with the storage (BlockListStorage::CopyFor), so that they
// cross to the device once per (lists, device) rather than on every call.
//
//   BlockListStorage storage(layout, /*block_size=*/128);
//   absl::StatusOr<kernels::BlockLists> lists =
//       DeviceBlockLists(storage, /*device_index=*/0);

#ifndef ATTENTION_BLOCK_LISTS_CUDA_H_
#define ATTENTION_BLOCK_LISTS_CUDA_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "attention/block_lists.h"
#include "kernels/block_sparse_params.h"

namespace dilated {

// Returns the lists of `storage` with every pointer in the memory of CUDA
// device `device_index` (valid while `storage` lives), or the CUDA error of
// the allocation or copy. The caller has made that device current.
absl::StatusOr<kernels::BlockLists> DeviceBlockLists(
    const BlockListStorage& storage, int64_t device_index);

}  // namespace dilated

#endif  // ATTENTION_BLOCK_LISTS_CUDA_H_
