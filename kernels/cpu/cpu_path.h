// File: cpu_path.h
//
// Which instruction set the fused CPU kernels run with. The library is built
// for x86-64-v3 (AVX2 + FMA) so that one binary runs on any recent x86
// machine; the hot tile loops also exist compiled for AVX-512 (F, DQ, BW, VL)
// and are chosen once per process when the CPU has those extensions.
//
// The environment variable DILATED_CPU_PATH=avx2, read once, or
// SetCpuPath(CpuPath::kAvx2) force the AVX2 path (tests cover both paths on
// an AVX-512 machine). Both paths give the same results within float32
// rounding; each is deterministic and independent of the thread count.

#ifndef KERNELS_CPU_CPU_PATH_H_
#define KERNELS_CPU_CPU_PATH_H_

namespace dilated {
namespace kernels {
namespace cpu {

enum class CpuPath { kAvx2, kAvx512 };

// Returns true when this CPU executes AVX-512 F, DQ, BW and VL.
bool CpuHasAvx512();

// Returns the path the fused kernels use now: kAvx512 when the CPU has it,
// unless DILATED_CPU_PATH=avx2 or SetCpuPath chose kAvx2.
CpuPath ActiveCpuPath();

// Makes the fused kernels use `path` from the next call on. Returns false
// (and changes nothing) when `path` is kAvx512 on a CPU without AVX-512.
// Not meant to be called while a kernel runs on another thread.
bool SetCpuPath(CpuPath path);

// Returns "avx2" or "avx512".
const char* CpuPathName(CpuPath path);

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CPU_CPU_PATH_H_
