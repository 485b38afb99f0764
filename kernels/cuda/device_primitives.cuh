// File: device_primitives.cuh
//
// Thin wrappers over the PTX instructions the flash kernels are built from:
// tensor-core mma.sync (m16n8k16, float32 accumulation), ldmatrix, cp.async
// and the fast base-2 exponential, plus the element-type traits that select
// the float16 or bfloat16 variants. Device code only; no host dependencies.
//
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16"): with
// lane = 4 * group + pair,
//   A (16x16): a0 = (group, 2*pair..+1), a1 = (group+8, 2*pair..+1),
//              a2 = (group, 2*pair+8..+9), a3 = (group+8, 2*pair+8..+9);
//   B (16x8):  b0 = (k = 2*pair..+1, n = group), b1 = (k = 2*pair+8..+9);
//   C (16x8):  c0, c1 = (group, 2*pair..+1), c2, c3 = (group+8, 2*pair..+1).

#ifndef KERNELS_CUDA_DEVICE_PRIMITIVES_CUH_
#define KERNELS_CUDA_DEVICE_PRIMITIVES_CUH_

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/dilated_params.h"
#include "kernels/exp2_on_fma.h"

namespace dilated {
namespace kernels {
namespace gpu {

// Maps the library's DataType to the CUDA storage type.
template <DataType kDtype>
struct Element;

template <>
struct Element<DataType::kFloat16> {
  using Type = __half;
};

template <>
struct Element<DataType::kBFloat16> {
  using Type = __nv_bfloat16;
};

template <>
struct Element<DataType::kFloat32> {
  using Type = float;
};

// Returns two floats rounded to the 16-bit type, packed low-first.
template <DataType kDtype>
__device__ __forceinline__ uint32_t PackPair(float lo, float hi);

template <>
__device__ __forceinline__ uint32_t PackPair<DataType::kFloat16>(float lo,
                                                                 float hi) {
  __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&h);
}

template <>
__device__ __forceinline__ uint32_t PackPair<DataType::kBFloat16>(float lo,
                                                                  float hi) {
  __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&h);
}

// Returns the float value of a stored 16-bit element.
__device__ __forceinline__ float ToFloat(__half x) { return __half2float(x); }
__device__ __forceinline__ float ToFloat(__nv_bfloat16 x) {
  return __bfloat162float(x);
}
__device__ __forceinline__ float ToFloat(float x) { return x; }

// c += a * b on the tensor cores (m16n8k16, float32 accumulators).
template <DataType kDtype>
__device__ __forceinline__ void Mma(float (&c)[4], const uint32_t (&a)[4],
                                    uint32_t b0, uint32_t b1);

template <>
__device__ __forceinline__ void Mma<DataType::kFloat16>(float (&c)[4],
                                                        const uint32_t (&a)[4],
                                                        uint32_t b0,
                                                        uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

template <>
__device__ __forceinline__ void Mma<DataType::kBFloat16>(float (&c)[4],
                                                         const uint32_t (&a)[4],
                                                         uint32_t b0,
                                                         uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Returns the float32 dot product of two 16-byte vectors of eight 16-bit
// elements, summed in element order.
template <typename T>
__device__ __forceinline__ float Dot8(const uint4& a, const uint4& b) {
  const T* ea = reinterpret_cast<const T*>(&a);
  const T* eb = reinterpret_cast<const T*>(&b);
  float dot = 0.0f;
#pragma unroll
  for (int e = 0; e < 8; ++e) dot += ToFloat(ea[e]) * ToFloat(eb[e]);
  return dot;
}

// Returns the shared-memory address of a generic pointer into shared memory.
__device__ __forceinline__ uint32_t SharedAddress(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Loads four 8x8 b16 matrices; lane l supplies the row address of matrix
// l / 8, row l % 8. r[i] receives matrix i: row lane / 4, columns
// 2 * (lane % 4) and the next.
__device__ __forceinline__ void LdMatrixX4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile(
      "ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
      : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
      : "r"(addr));
}

// As LdMatrixX4, transposed: r[i] receives column lane / 4, rows
// 2 * (lane % 4) and the next, of matrix i.
__device__ __forceinline__ void LdMatrixX4Trans(uint32_t (&r)[4],
                                                uint32_t addr) {
  asm volatile(
      "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, "
      "[%4];\n"
      : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
      : "r"(addr));
}

// Starts an asynchronous 16-byte copy global -> shared; when `valid` is false
// nothing is read and the 16 shared bytes are zero-filled.
__device__ __forceinline__ void CpAsync16(uint32_t smem_addr, const void* gmem,
                                          bool valid) {
  const int src_bytes = valid ? 16 : 0;
  asm volatile(
      "cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr),
      "l"(gmem), "r"(src_bytes));
}

__device__ __forceinline__ void CpAsyncCommit() {
  asm volatile("cp.async.commit_group;\n" ::);
}

// Waits until at most kPending committed cp.async groups are in flight.
template <int kPending>
__device__ __forceinline__ void CpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
}

// Returns 2^x (hardware approximation, relative error ~2^-22; 2^-inf = 0).
__device__ __forceinline__ float Exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// 2^x for accumulator `i` of a wgmma score tile (columns 8 (i / 4) onwards):
// on the FMA pipe (Exp2OnFma) for the last group of 8 columns in every
// kFmaExpEvery, on the MUFU pipe (Exp2) for the others and for all with
// kFmaExpEvery = 0. The MUFU pipe gives 16 results per clock and SM; where
// a tile's products take about as many tensor-core cycles as its
// exponentials take MUFU cycles (the forward at head_dim 64), moving a
// share to the FMA pipe keeps the MUFU pipe from setting the pace.
template <int kFmaExpEvery>
__device__ __forceinline__ float Exp2Spread(float x, int i) {
  static_assert(kFmaExpEvery >= 0, "0: every exponential on MUFU");
  if constexpr (kFmaExpEvery > 0) {
    if ((i / 4) % kFmaExpEvery == kFmaExpEvery - 1) return Exp2OnFma(x);
  }
  return Exp2(x);
}

}  // namespace gpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CUDA_DEVICE_PRIMITIVES_CUH_
