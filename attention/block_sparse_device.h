// File: block_sparse_device.h
//
// How "block_sparse" reaches kernels for devices other than the CPU: a
// device-only target (attention/block_sparse_cuda.cc) registers its forward
// and backward for a device type at start-up, and BlockSparseAttention runs
// them for tensors on that device (FailedPrecondition when none is
// registered, as in a build without CUDA). The kernels receive the cached
// host lists and put them where their device reads them.
//
//   DA_REGISTER_BLOCK_SPARSE_DEVICE(DeviceType::kCuda,
//                                   (BlockSparseDeviceKernels{&Fwd, &Bwd}));

#ifndef ATTENTION_BLOCK_SPARSE_DEVICE_H_
#define ATTENTION_BLOCK_SPARSE_DEVICE_H_

#include "absl/status/status.h"
#include "attention/backend_registry.h"
#include "attention/tensor.h"
#include "factory/status_macros.h"
#include "kernels/block_sparse_params.h"
#include "kernels/dilated_params.h"

namespace dilated {

struct BlockSparseDeviceKernels {
  // `host_lists` point to host memory that stays valid during the call.
  absl::Status (*forward)(const kernels::ForwardParams& params,
                          const kernels::BlockLists& host_lists,
                          const ExecutionContext& context);
  absl::Status (*backward)(const kernels::BackwardParams& params,
                           const kernels::BlockLists& host_lists,
                           const ExecutionContext& context);
};

// Stores `kernels` for `device`. REQUIRES: none is registered for it yet
// (otherwise the process aborts naming both sites).
void RegisterBlockSparseDeviceKernels(DeviceType device,
                                      const BlockSparseDeviceKernels& kernels,
                                      const char* file, int line);

// Returns the kernels registered for `device`, or null.
const BlockSparseDeviceKernels* FindBlockSparseDeviceKernels(DeviceType device);

#define DA_REGISTER_BLOCK_SPARSE_DEVICE(device, kernels)              \
  DA_REGISTER_AT_STARTUP(::dilated::RegisterBlockSparseDeviceKernels( \
      device, kernels, __FILE__, __LINE__))

}  // namespace dilated

#endif  // ATTENTION_BLOCK_SPARSE_DEVICE_H_
