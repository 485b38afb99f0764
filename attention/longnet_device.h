// File: longnet_device.h
//
// The device kernels of "longnet" (device_kernels.h): a device-only target
// (attention/longnet_cuda.cc) registers its forward and backward for a device
// type, and the longnet attention runs them for tensors on that device.

#ifndef ATTENTION_LONGNET_DEVICE_H_
#define ATTENTION_LONGNET_DEVICE_H_

#include <vector>

#include "absl/status/status.h"
#include "attention/backend_registry.h"
#include "attention/device_kernels.h"
#include "kernels/dilated_params.h"

namespace dilated {

struct LongNetDeviceKernels {
  // `branches` holds the kernel parameters of every branch: the call's
  // parameters with the branch's head groups (LongNetBranchGroups) and no
  // 1/G, out and lse still the call's (the merged ones, which the backward
  // pass reads; the forward pass points each branch at buffers of its own).
  absl::Status (*forward)(const kernels::ForwardParams& params,
                          const std::vector<kernels::ForwardParams>& branches,
                          const ExecutionContext& context);
  absl::Status (*backward)(const kernels::BackwardParams& params,
                           const std::vector<kernels::ForwardParams>& branches,
                           const ExecutionContext& context);
};

}  // namespace dilated

#endif  // ATTENTION_LONGNET_DEVICE_H_
