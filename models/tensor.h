// File: tensor.h
//
// Tensor: an owning, row-major host tensor of float32, float16 or bfloat16,
// the activations that flow between the layers of a model. Layers read and
// write it through float32 rows (compute and accumulation are float32; the
// storage type is the caller's).
//
//   dilated::models::Tensor x = dilated::models::Tensor::Zeros(
//       dilated::DType::kFloat32, {2, 4096, 768});
//   float* row = x.MutableFloat32() + 5 * 768;  // float32 only
//   dilated::TensorView view = x.View();        // for the attention API

#ifndef MODELS_TENSOR_H_
#define MODELS_TENSOR_H_

#include <cstddef>
#include <cstdint>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "attention/tensor.h"

namespace dilated {
namespace models {

class Tensor {
 public:
  // An empty float32 tensor of shape [0].
  Tensor();

  // Returns a tensor of `shape` filled with zeros.
  // REQUIRES: every extent is >= 0 and shape.size() <= TensorView::kMaxRank.
  static Tensor Zeros(DType dtype, std::vector<int64_t> shape);

  // Returns a tensor of `shape` whose elements are unspecified, for outputs
  // that are written in full (skips zeroing the memory).
  // REQUIRES: as Zeros.
  static Tensor Uninitialized(DType dtype, std::vector<int64_t> shape);

  // Returns a float32 tensor of `shape` holding `values` (row-major).
  // REQUIRES: values.size() is the product of `shape`.
  static Tensor FromFloat32(std::vector<int64_t> shape,
                            const std::vector<float>& values);

  // Returns a copy of the CPU tensor `view` (any strides), or InvalidArgument
  // when it is not on the CPU or has a null data pointer.
  static absl::StatusOr<Tensor> CopyOf(const TensorView& view);

  DType dtype() const { return dtype_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int rank() const { return static_cast<int>(shape_.size()); }
  // Returns extent `axis`; negative axes count from the end.
  int64_t dim(int axis) const;
  int64_t NumElements() const { return num_elements_; }
  // Returns the shape as "[2, 64, 768]".
  std::string ShapeString() const;

  const void* data() const { return storage_.data(); }
  void* mutable_data() { return storage_.data(); }
  // REQUIRES: dtype() == kFloat32.
  const float* Float32() const;
  float* MutableFloat32();

  // Returns a row-major CPU view of the whole tensor.
  TensorView View() const;

  // Returns every element converted to float32, row-major.
  std::vector<float> ToFloat32() const;

  // Overwrites every element with `values` rounded to dtype().
  // REQUIRES: values.size() == NumElements().
  void AssignFromFloat32(const std::vector<float>& values);

 private:
  DType dtype_ = DType::kFloat32;
  std::vector<int64_t> shape_;
  int64_t num_elements_ = 0;
  // Allocates 64-byte aligned storage, so that rows at equal offsets have
  // equal alignment in every tensor: vectorised reductions then sum in the
  // same order, and equal inputs give bit-identical outputs. Blocks of
  // kPooledBytes and more come from a process-wide caching pool (see
  // ReleaseCachedTensorMemory), so that a model's forward, which frees and
  // allocates the same large activations again and again, does not fault in
  // fresh pages from the kernel for each of them.
  static void* AllocateStorage(size_t bytes);
  static void DeallocateStorage(void* p, size_t bytes);
  template <typename T>
  struct AlignedAllocator {
    using value_type = T;
    AlignedAllocator() = default;
    template <typename U>
    AlignedAllocator(const AlignedAllocator<U>&) {}
    T* allocate(size_t n) {
      return static_cast<T*>(AllocateStorage(n * sizeof(T)));
    }
    void deallocate(T* p, size_t n) { DeallocateStorage(p, n * sizeof(T)); }
    // Default-initialises (leaves floats unset) unless a value is given.
    template <typename U>
    void construct(U* p) {
      ::new (static_cast<void*>(p)) U;
    }
    template <typename U, typename V>
    void construct(U* p, V&& value) {
      ::new (static_cast<void*>(p)) U(std::forward<V>(value));
    }
    bool operator==(const AlignedAllocator&) const { return true; }
    bool operator!=(const AlignedAllocator&) const { return false; }
  };

  // The elements, in 4-byte words so that float32 data is aligned; 16-bit
  // types use the first half of the words' bytes.
  std::vector<float, AlignedAllocator<float>> storage_;
};

// Returns the memory that tensors freed and the pool of large tensor storage
// still caches to the system. The pool keeps at most the peak of the bytes
// it had in use plus an eighth (memory/pool_allocator.h); a program that ran
// a large model once and goes on with other work calls this to give it back.
void ReleaseCachedTensorMemory();

}  // namespace models
}  // namespace dilated

#endif  // MODELS_TENSOR_H_
