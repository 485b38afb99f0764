#include "attention/block_lists_cuda.h"

#include <cuda_runtime_api.h>

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/cuda_util.h"
#include "factory/status_macros.h"

namespace dilated {
namespace {

// The number of row_begin (and of column_begin) entries of `lists`.
int64_t BeginCount(const kernels::BlockLists& lists) {
  return lists.heads * lists.num_blocks + 1;
}

// The device copy of a storage's lists: one allocation holding row_begin,
// row_blocks, column_begin and column_blocks, in that order.
absl::StatusOr<BlockListStorage::DeviceCopy> CopyToDevice(
    const kernels::BlockLists& host) {
  const int64_t begins = BeginCount(host);
  const int64_t entries = host.entries;
  void* memory = nullptr;
  DA_RETURN_IF_ERROR(CudaStatus(
      cudaMalloc(&memory, (2 * begins + 2 * entries) * sizeof(int32_t)),
      "allocating the device block lists"));
  BlockListStorage::DeviceCopy copy(
      memory, [](const void* p) { cudaFree(const_cast<void*>(p)); });
  int32_t* base = static_cast<int32_t*>(memory);
  for (const auto& [piece, count] :
       {std::pair<const int32_t*, int64_t>{host.row_begin, begins},
        {host.row_blocks, entries},
        {host.column_begin, begins},
        {host.column_blocks, entries}}) {
    // Synchronous: the copy is complete on every stream when this returns.
    DA_RETURN_IF_ERROR(
        CudaStatus(cudaMemcpy(base, piece, count * sizeof(int32_t),
                              cudaMemcpyHostToDevice),
                   "copying the block lists to the device"));
    base += count;
  }
  return copy;
}

}  // namespace

absl::StatusOr<kernels::BlockLists> DeviceBlockLists(
    const BlockListStorage& storage, int64_t device_index) {
  const kernels::BlockLists host = storage.Lists();
  if (host.entries != host.row_begin[BeginCount(host) - 1]) {
    return absl::InternalError(absl::StrCat(
        "block lists: entries ", host.entries, " but row_begin ends at ",
        host.row_begin[BeginCount(host) - 1]));
  }
  DA_ASSIGN_OR_RETURN(
      const BlockListStorage::DeviceCopy copy,
      storage.CopyFor(device_index, [&] { return CopyToDevice(host); }));
  const int64_t begins = BeginCount(host);
  const int64_t entries = host.entries;
  const int32_t* base = static_cast<const int32_t*>(copy.get());
  kernels::BlockLists device = host;
  device.row_begin = base;
  device.row_blocks = base + begins;
  device.column_begin = base + begins + entries;
  device.column_blocks = base + 2 * begins + entries;
  return device;
}

}  // namespace dilated
