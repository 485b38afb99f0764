#include "kernels/cpu/cpu_path.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace dilated {
namespace kernels {
namespace cpu {
namespace {

CpuPath DefaultPath() {
  const char* forced = std::getenv("DILATED_CPU_PATH");
  if (forced != nullptr && std::strcmp(forced, "avx2") == 0) {
    return CpuPath::kAvx2;
  }
  return CpuHasAvx512() ? CpuPath::kAvx512 : CpuPath::kAvx2;
}

std::atomic<CpuPath>& Active() {
  static std::atomic<CpuPath> path(DefaultPath());
  return path;
}

}  // namespace

bool CpuHasAvx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl");
}

CpuPath ActiveCpuPath() { return Active().load(std::memory_order_relaxed); }

bool SetCpuPath(CpuPath path) {
  if (path == CpuPath::kAvx512 && !CpuHasAvx512()) return false;
  Active().store(path, std::memory_order_relaxed);
  return true;
}

const char* CpuPathName(CpuPath path) {
  return path == CpuPath::kAvx512 ? "avx512" : "avx2";
}

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated
