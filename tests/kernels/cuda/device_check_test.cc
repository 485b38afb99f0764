// Runs on a GPU: proves a kernel built by our nvcc rule launches and computes.

#include "kernels/cuda/device_check.h"

#include <vector>

#include "gtest/gtest.h"

namespace dilated {
namespace kernels {
namespace cuda {
namespace {

TEST(DeviceCheck, ScalesOnTheGpu) {
  std::vector<float> host(1000);
  for (size_t i = 0; i < host.size(); ++i) host[i] = static_cast<float>(i);
  float* device = nullptr;
  ASSERT_EQ(cudaMalloc(&device, host.size() * sizeof(float)), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(device, host.data(), host.size() * sizeof(float),
                       cudaMemcpyHostToDevice),
            cudaSuccess);
  ASSERT_EQ(
      ScaleOnDevice(device, static_cast<int64_t>(host.size()), 2.5f, nullptr),
      cudaSuccess);
  ASSERT_EQ(cudaMemcpy(host.data(), device, host.size() * sizeof(float),
                       cudaMemcpyDeviceToHost),
            cudaSuccess);
  cudaFree(device);
  for (size_t i = 0; i < host.size(); ++i) {
    EXPECT_EQ(host[i], 2.5f * static_cast<float>(i)) << i;  // Exact in fp32.
  }
}

}  // namespace
}  // namespace cuda
}  // namespace kernels
}  // namespace dilated
