// Registers device 0 of CUDA as a test device. Linked only into CUDA builds.

#include <cstdio>
#include <cstdlib>

#include "cuda_runtime.h"
#include "tests/testing/test_device.h"

namespace dilated {
namespace testing {
namespace {

void Check(cudaError_t error, const char* what) {
  if (error != cudaSuccess) {
    std::fprintf(stderr, "%s failed: %s\n", what, cudaGetErrorString(error));
    std::abort();
  }
}

class CudaTestDevice : public TestDevice {
 public:
  Device device() const override { return Device::Cuda(0); }
  void* Allocate(size_t bytes) override {
    void* ptr = nullptr;
    Check(cudaMalloc(&ptr, bytes == 0 ? 1 : bytes), "cudaMalloc");
    return ptr;
  }
  void Free(void* ptr) override { Check(cudaFree(ptr), "cudaFree"); }
  void CopyToDevice(void* dst, const void* src, size_t bytes) override {
    Check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "cudaMemcpy");
  }
  void CopyToHost(void* dst, const void* src, size_t bytes) override {
    Check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy");
  }
  void Synchronize() override {
    Check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  }
};

const bool registered = RegisterTestDevice(new CudaTestDevice());

}  // namespace
}  // namespace testing
}  // namespace dilated
