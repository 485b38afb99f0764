// File: device.h
//
// Device: where a tensor or an allocator's memory lives, the host (CPU) or a
// CUDA device by index. The one device type of the library: tensor views,
// allocators and backends all speak it.

#ifndef BASE_DEVICE_H_
#define BASE_DEVICE_H_

#include <string>

namespace dilated {

enum class DeviceType { kCpu, kCuda };

struct Device {
  DeviceType type = DeviceType::kCpu;
  int index = 0;  // Always 0 for the CPU.

  static Device Cpu() { return Device{DeviceType::kCpu, 0}; }
  static Device Cuda(int index) { return Device{DeviceType::kCuda, index}; }
  bool operator==(const Device& other) const {
    return type == other.type && index == other.index;
  }
  bool operator!=(const Device& other) const { return !(*this == other); }
};

// Returns "cpu" or "cuda:<index>".
std::string DeviceName(const Device& device);

}  // namespace dilated

#endif  // BASE_DEVICE_H_
