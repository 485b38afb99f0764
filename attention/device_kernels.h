// File: device_kernels.h
//
// DeviceKernels<Kernels>: how an implementation that is not a KernelAttention
// ("block_sparse", "longnet") reaches kernels for devices other than the
// CPU. A device-only target registers a Kernels struct (function pointers of
// the implementation's own shape) for a device type at start-up; the
// implementation looks it up per call and answers FailedPrecondition when
// there is none, as in a build without CUDA.
//
//   DA_REGISTER_DEVICE_KERNELS(BlockSparseDeviceKernels, DeviceType::kCuda,
//                              (BlockSparseDeviceKernels{&Fwd, &Bwd}));
//   const BlockSparseDeviceKernels* kernels =
//       DeviceKernels<BlockSparseDeviceKernels>::Find(DeviceType::kCuda);

#ifndef ATTENTION_DEVICE_KERNELS_H_
#define ATTENTION_DEVICE_KERNELS_H_

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "attention/tensor.h"
#include "factory/registry.h"

namespace dilated {

template <typename Kernels>
class DeviceKernels {
 public:
  // Stores `kernels` for `device`. REQUIRES: none is registered for it yet
  // (otherwise the process aborts naming both sites).
  static void Register(DeviceType device, const Kernels& kernels,
                       const char* file, int line) {
    Registry& registry = Instance();
    absl::MutexLock lock(&registry.mutex);
    const std::string site = absl::StrCat(file, ":", line);
    auto [it, inserted] =
        registry.kernels.emplace(device, std::make_pair(kernels, site));
    if (!inserted) {
      std::fprintf(stderr, "device kernels registered twice: %s and %s\n",
                   it->second.second.c_str(), site.c_str());
      std::abort();
    }
  }

  // Returns the kernels registered for `device`, or null. The pointer stays
  // valid for the life of the process.
  static const Kernels* Find(DeviceType device) {
    Registry& registry = Instance();
    absl::MutexLock lock(&registry.mutex);
    auto found = registry.kernels.find(device);
    return found == registry.kernels.end() ? nullptr : &found->second.first;
  }

 private:
  struct Registry {
    absl::Mutex mutex;
    std::map<DeviceType, std::pair<Kernels, std::string>> kernels
        ABSL_GUARDED_BY(mutex);
  };

  static Registry& Instance() {
    static Registry* registry = new Registry();
    return *registry;
  }
};

#define DA_REGISTER_DEVICE_KERNELS(Kernels, device, kernels)          \
  DA_REGISTER_AT_STARTUP(::dilated::DeviceKernels<Kernels>::Register( \
      device, kernels, __FILE__, __LINE__))

}  // namespace dilated

#endif  // ATTENTION_DEVICE_KERNELS_H_
