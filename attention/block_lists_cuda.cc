#include "attention/block_lists_cuda.h"

#include <cuda_runtime_api.h>

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/cuda_util.h"
#include "factory/status_macros.h"

namespace dilated {
namespace {

// Where the four lists lie inside the one device allocation of a storage's
// copy, in int32 elements from its start: row_begin, row_blocks,
// column_begin and column_blocks, in that order. CopyToDevice writes them
// there and DeviceBlockLists points at them.
struct PieceLayout {
  int64_t begins;   // entries of row_begin and of column_begin
  int64_t entries;  // entries of row_blocks and of column_blocks
  int64_t RowBlocks() const { return begins; }
  int64_t ColumnBegin() const { return begins + entries; }
  int64_t ColumnBlocks() const { return 2 * begins + entries; }
  int64_t Total() const { return 2 * begins + 2 * entries; }
};

PieceLayout LayoutOf(const kernels::BlockLists& lists) {
  return PieceLayout{lists.heads * lists.num_blocks + 1, lists.entries};
}

absl::StatusOr<BlockListStorage::DeviceCopy> CopyToDevice(
    const kernels::BlockLists& host, const PieceLayout& layout) {
  void* memory = nullptr;
  DA_RETURN_IF_ERROR(
      CudaStatus(cudaMalloc(&memory, layout.Total() * sizeof(int32_t)),
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
       {Piece{host.row_begin, 0, layout.begins},
        Piece{host.row_blocks, layout.RowBlocks(), layout.entries},
        Piece{host.column_begin, layout.ColumnBegin(), layout.begins},
        Piece{host.column_blocks, layout.ColumnBlocks(), layout.entries}}) {
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
  const PieceLayout layout = LayoutOf(host);
  const int32_t row_begin_end = host.row_begin[layout.begins - 1];
  if (host.entries != row_begin_end) {
    return absl::InternalError(
        absl::StrCat("block lists: entries ", host.entries,
                     " but row_begin ends at ", row_begin_end));
  }
  DA_ASSIGN_OR_RETURN(const BlockListStorage::DeviceCopy copy,
                      storage.CopyFor(device_index, [&] {
                        return CopyToDevice(host, layout);
                      }));
  const int32_t* base = static_cast<const int32_t*>(copy.get());
  kernels::BlockLists device = host;
  device.row_begin = base;
  device.row_blocks = base + layout.RowBlocks();
  device.column_begin = base + layout.ColumnBegin();
  device.column_blocks = base + layout.ColumnBlocks();
  return device;
}

}  // namespace dilated
