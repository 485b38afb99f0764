// File: test_device.h
//
// The devices a test suite can run on. The CPU is always present; a CUDA
// build links a CUDA device in (cuda_test_device.cc), which registers itself,
// so one suite covers every device the binary was built for.

#ifndef TESTS_TESTING_TEST_DEVICE_H_
#define TESTS_TESTING_TEST_DEVICE_H_

#include <cstddef>
#include <vector>

#include "attention/tensor.h"

namespace dilated {
namespace testing {

class TestDevice {
 public:
  virtual ~TestDevice() = default;
  // Returns the device tensors live on.
  virtual Device device() const = 0;
  // Returns `bytes` of device memory (aborts on failure: tests only).
  virtual void* Allocate(size_t bytes) = 0;
  virtual void Free(void* ptr) = 0;
  virtual void CopyToDevice(void* dst, const void* src, size_t bytes) = 0;
  virtual void CopyToHost(void* dst, const void* src, size_t bytes) = 0;
  // Waits for all work queued on the device.
  virtual void Synchronize() = 0;
};

// Bytes copied onto a test device (masks, offsets), freed with the object.
class DeviceBytes {
 public:
  DeviceBytes(TestDevice* device, const void* data, size_t bytes);
  ~DeviceBytes();
  DeviceBytes(const DeviceBytes&) = delete;
  DeviceBytes& operator=(const DeviceBytes&) = delete;

  void* data() const { return data_; }

 private:
  TestDevice* device_;
  void* data_;
};

// Returns every device registered in this binary (the CPU first).
const std::vector<TestDevice*>& TestDevices();

// Adds `device` (owned forever) to TestDevices(); for static registration.
bool RegisterTestDevice(TestDevice* device);

}  // namespace testing
}  // namespace dilated

#endif  // TESTS_TESTING_TEST_DEVICE_H_
