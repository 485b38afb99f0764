#include "attention/block_lists_cuda.h"

#include <cuda_runtime_api.h>

#include <cstdint>
#include <initializer_list>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "base/cuda_util.h"
#include "factory/status_macros.h"

namespace dilated {
namespace {

// Where the four lists lie inside the one device allocation of a storage's
// copy, in int32 elements from its start, in this order. CopyToDevice
// writes them there and DeviceBlockLists points at them.
struct PieceOffsets {
  int64_t begins;   // entries of row_begin and of column_begin
  int64_t entries;  // entries of row_blocks and of column_blocks
  int64_t row_begin;
  int64_t row_blocks;
  int64_t column_begin;
  int64_t column_blocks;
  int64_t total;  // int32 elements of the allocation
};

PieceOffsets OffsetsOf(const kernels::BlockLists& lists) {
  PieceOffsets offsets;
  offsets.begins = lists.heads * lists.num_blocks + 1;
  offsets.entries = lists.entries;
  offsets.row_begin = 0;
  offsets.row_blocks = offsets.row_begin + offsets.begins;
  offsets.column_begin = offsets.row_blocks + offsets.entries;
  offsets.column_blocks = offsets.column_begin + offsets.begins;
  offsets.total = offsets.column_blocks + offsets.entries;
  return offsets;
}

absl::StatusOr<BlockListStorage::DeviceCopy> CopyToDevice(
    const kernels::BlockLists& host, const PieceOffsets& offsets) {
  void* memory = nullptr;
  DA_RETURN_IF_ERROR(
      CudaStatus(cudaMalloc(&memory, offsets.total * sizeof(int32_t)),
                 "allocating the device block lists"));
  BlockListStorage::DeviceCopy copy(
      memory, [](const void* p) { cudaFree(const_cast<void*>(p)); });
  int32_t* base = static_cast<int32_t*>(memory);
  struct Piece {
    const int32_t* source;
    int64_t offset;
    int64_t count;
  };
  for (const Piece& piece :
       {Piece{host.row_begin, offsets.row_begin, offsets.begins},
        Piece{host.row_blocks, offsets.row_blocks, offsets.entries},
        Piece{host.column_begin, offsets.column_begin, offsets.begins},
        Piece{host.column_blocks, offsets.column_blocks, offsets.entries}}) {
    // Synchronous: the copy is complete on every stream when this returns.
    DA_RETURN_IF_ERROR(CudaStatus(
        cudaMemcpy(base + piece.offset, piece.source,
                   piece.count * sizeof(int32_t), cudaMemcpyHostToDevice),
        "copying the block lists to the device"));
  }
  return copy;
}

}  // namespace

absl::StatusOr<kernels::BlockLists> DeviceBlockLists(
    const BlockListStorage& storage, int64_t device_index) {
  const kernels::BlockLists host = storage.Lists();
  const PieceOffsets offsets = OffsetsOf(host);
  const int32_t row_begin_end = host.row_begin[offsets.begins - 1];
  if (host.entries != row_begin_end) {
    return absl::InternalError(
        absl::StrCat("block lists: entries ", host.entries,
                     " but row_begin ends at ", row_begin_end));
  }
  DA_ASSIGN_OR_RETURN(const BlockListStorage::DeviceCopy copy,
                      storage.CopyFor(device_index, [&] {
                        return CopyToDevice(host, offsets);
                      }));
  const int32_t* base = static_cast<const int32_t*>(copy.get());
  kernels::BlockLists device = host;
  device.row_begin = base + offsets.row_begin;
  device.row_blocks = base + offsets.row_blocks;
  device.column_begin = base + offsets.column_begin;
  device.column_blocks = base + offsets.column_blocks;
  return device;
}

}  // namespace dilated
