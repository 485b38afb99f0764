// File: block_sparse_device.h
//
// The device kernels of "block_sparse" (device_kernels.h): a device-only
// target (attention/block_sparse_cuda.cc) registers its forward and backward
// for a device type, and BlockSparseAttention runs them for tensors on that
// device. They receive the cached lists and keep a copy where their device
// reads them. Packed calls reach them one fixed-length sequence at a time,
// after read_cu_seqlens has brought the offsets to the host.
//
//   DA_REGISTER_DEVICE_KERNELS(
//       BlockSparseDeviceKernels, DeviceType::kCuda,
//       (BlockSparseDeviceKernels{&Fwd, &Bwd, &ReadCuSeqlens}));

#ifndef ATTENTION_BLOCK_SPARSE_DEVICE_H_
#define ATTENTION_BLOCK_SPARSE_DEVICE_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "attention/backend_registry.h"
#include "attention/block_lists.h"
#include "attention/device_kernels.h"
#include "kernels/block_sparse_params.h"
#include "kernels/dilated_params.h"

namespace dilated {

struct BlockSparseDeviceKernels {
  // `lists` hold the host lists of the call's layout and keep the device's
  // copy of them (BlockListStorage::CopyFor) for later calls.
  absl::Status (*forward)(const kernels::ForwardParams& params,
                          const BlockListStorage& lists,
                          const ExecutionContext& context);
  absl::Status (*backward)(const kernels::BackwardParams& params,
                           const BlockListStorage& lists,
                           const ExecutionContext& context);
  // Returns a host copy of the batch + 1 values of params.sequence.cu_seqlens
  // (in device or host memory), once every earlier work on the context's
  // stream is done.
  absl::StatusOr<std::vector<int32_t>> (*read_cu_seqlens)(
      const kernels::ForwardParams& params, const ExecutionContext& context);
};

}  // namespace dilated

#endif  // ATTENTION_BLOCK_SPARSE_DEVICE_H_
