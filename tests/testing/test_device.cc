#include "tests/testing/test_device.h"

#include <cstdlib>
#include <cstring>

namespace dilated {
namespace testing {
namespace {

class CpuTestDevice : public TestDevice {
 public:
  Device device() const override { return Device::Cpu(); }
  void* Allocate(size_t bytes) override {
    void* ptr = std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
    if (ptr == nullptr) std::abort();
    return ptr;
  }
  void Free(void* ptr) override { std::free(ptr); }
  void CopyToDevice(void* dst, const void* src, size_t bytes) override {
    std::memcpy(dst, src, bytes);
  }
  void CopyToHost(void* dst, const void* src, size_t bytes) override {
    std::memcpy(dst, src, bytes);
  }
  void Synchronize() override {}
};

std::vector<TestDevice*>& MutableDevices() {
  static std::vector<TestDevice*>* devices =
      new std::vector<TestDevice*>{new CpuTestDevice()};
  return *devices;
}

}  // namespace

DeviceBytes::DeviceBytes(TestDevice* device, const void* data, size_t bytes)
    : device_(device), data_(device->Allocate(bytes == 0 ? 1 : bytes)) {
  if (bytes > 0) device_->CopyToDevice(data_, data, bytes);
}

DeviceBytes::~DeviceBytes() { device_->Free(data_); }

const std::vector<TestDevice*>& TestDevices() { return MutableDevices(); }

bool RegisterTestDevice(TestDevice* device) {
  MutableDevices().push_back(device);
  return true;
}

}  // namespace testing
}  // namespace dilated
