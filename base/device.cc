#include "base/device.h"

namespace dilated {

std::string DeviceName(const Device& device) {
  if (device.type == DeviceType::kCpu) return "cpu";
  return "cuda:" + std::to_string(device.index);
}

}  // namespace dilated
