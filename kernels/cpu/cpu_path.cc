#include "kernels/cpu/cpu_path.h"

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace dilated {
namespace kernels {
namespace cpu {
namespace {

// Linux's arch_prctl request for permission to use an extended state
// component, and AMX's tile data component (asm/prctl.h; spelled out here
// because older C libraries lack the names).
constexpr int kArchRequestXcompPerm = 0x1023;
constexpr int kXfeatureTileData = 18;

// Returns true when CPUID leaf 7 reports AMX-TILE, AMX-BF16 and AVX512-BF16.
bool CpuidHasAmx() {
  unsigned eax, ebx, ecx, edx;
  if (__get_cpuid_max(0, nullptr) < 7) return false;
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  const bool amx_bf16 = (edx >> 22) & 1;
  const bool amx_tile = (edx >> 24) & 1;
  __cpuid_count(7, 1, eax, ebx, ecx, edx);
  const bool avx512_bf16 = (eax >> 5) & 1;
  return amx_bf16 && amx_tile && avx512_bf16;
}

// Asks Linux for the AMX tile state; returns whether it was granted.
bool RequestTileState() {
  return syscall(SYS_arch_prctl, kArchRequestXcompPerm, kXfeatureTileData) == 0;
}

CpuPath WidestPath() {
  if (CpuHasAmx()) return CpuPath::kAmx;
  return CpuHasAvx512() ? CpuPath::kAvx512 : CpuPath::kAvx2;
}

CpuPath DefaultPath() {
  const CpuPath widest = WidestPath();
  const char* forced = std::getenv("DILATED_CPU_PATH");
  if (forced == nullptr) return widest;
  if (std::strcmp(forced, "avx2") == 0) return CpuPath::kAvx2;
  if (std::strcmp(forced, "avx512") == 0 && widest != CpuPath::kAvx2) {
    return CpuPath::kAvx512;
  }
  return widest;
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

bool CpuHasAmx() {
  static const bool usable =
      CpuHasAvx512() && CpuidHasAmx() && RequestTileState();
  return usable;
}

CpuPath ActiveCpuPath() { return Active().load(std::memory_order_relaxed); }

bool SetCpuPath(CpuPath path) {
  if (path == CpuPath::kAvx512 && !CpuHasAvx512()) return false;
  if (path == CpuPath::kAmx && !CpuHasAmx()) return false;
  Active().store(path, std::memory_order_relaxed);
  return true;
}

const char* CpuPathName(CpuPath path) {
  switch (path) {
    case CpuPath::kAmx:
      return "amx";
    case CpuPath::kAvx512:
      return "avx512";
    case CpuPath::kAvx2:
      break;
  }
  return "avx2";
}

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated
