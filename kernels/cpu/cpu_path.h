// File: cpu_path.h
//
// Which instruction set the fused CPU kernels run with. The library is built
// for x86-64-v3 (AVX2 + FMA) so that one binary runs on any recent x86
// machine; the hot loops also exist compiled for AVX-512 (F, DQ, BW, VL) and,
// for bfloat16 and float16 tensors, for the AMX matrix engine (AMX-TILE,
// AMX-BF16 with AVX512-BF16 for the softmax's conversions). The path is chosen
// once per process from CPUID:
//
//   kAmx     AMX and AVX-512 present, and Linux granted the process the AMX
//            tile state (arch_prctl ARCH_REQ_XCOMP_PERM, asked for once).
//            bfloat16 and float16 run the AMX kernels (flash_amx.h); float32
//            runs the AVX-512 ones, since AMX multiplies 16-bit values only.
//   kAvx512  AVX-512 present. bfloat16 and float16 are widened to float32
//            and run the float32 kernels: without AMX the only 16-bit
//            product, AVX512-BF16's VDPBF16PS, multiplies at half the
//            float32 FMA rate on the Xeons measured
//            (docs/PERFORMANCE_CPU.md).
//   kAvx2    otherwise.
//
// The environment variable DILATED_CPU_PATH=avx2 or =avx512, read once, or
// SetCpuPath() force a narrower path (tests cover every path on an AMX
// machine). Results of every path agree within the rounding of their
// arithmetic; each is deterministic and independent of the thread count.

#ifndef KERNELS_CPU_CPU_PATH_H_
#define KERNELS_CPU_CPU_PATH_H_

namespace dilated {
namespace kernels {
namespace cpu {

enum class CpuPath { kAvx2, kAvx512, kAmx };

// Returns true when this CPU executes AVX-512 F, DQ, BW and VL.
bool CpuHasAvx512();

// Returns true when this CPU executes AVX-512 (as above), AVX512-BF16,
// AMX-TILE and AMX-BF16 and the kernel lets this process use the AMX tile
// state. The first call asks Linux for that permission (once per process);
// a refusal makes this false for good, and the kernels fall back to AVX-512.
bool CpuHasAmx();

// Returns the path the fused kernels use now: the widest the CPU has, unless
// DILATED_CPU_PATH or SetCpuPath chose a narrower one.
CpuPath ActiveCpuPath();

// Makes the fused kernels use `path` from the next call on. Returns false
// (and changes nothing) when the CPU lacks what `path` needs.
// Not meant to be called while a kernel runs on another thread.
bool SetCpuPath(CpuPath path);

// Returns "avx2", "avx512" or "amx".
const char* CpuPathName(CpuPath path);

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CPU_CPU_PATH_H_
