// File: linear_products.h
//
// LinearProducts: the matrix products of the models' linear layers on one
// device, through cuBLASLt with the bias and the residual fused into the
// product's epilogue, so a layer writes its output once:
//
//   y[rows, out] = x[rows, in] W[out, in]^T + bias[out] + residual[rows, out]
//
// All row-major, in one storage type (float32, float16 or bfloat16; the
// bias too), accumulated in float32 with TF32 off and rounded once. The
// algorithm cuBLASLt's heuristic picks is cached per shape and alignment.
// Not safe for concurrent use: one forward pass of a model at a time (the
// workspace and the cache are shared).
//
//   absl::StatusOr<std::shared_ptr<LinearProducts>> products =
//       LinearProducts::Create(0);
//   LinearProduct p{DType::kFloat16, rows, 768, 768, x, w, b, nullptr, y};
//   absl::Status status = (*products)->Run(p, stream);

#ifndef MODELS_CUDA_LINEAR_PRODUCTS_H_
#define MODELS_CUDA_LINEAR_PRODUCTS_H_

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "models/tensor.h"

namespace dilated {
namespace models {

// One product; `bias` and `residual` may be null. `residual` may be `y`.
struct LinearProduct {
  DType dtype = DType::kFloat32;
  int64_t rows = 0;
  int64_t in = 0;
  int64_t out = 0;
  const void* x = nullptr;
  const void* weight = nullptr;
  const void* bias = nullptr;
  const void* residual = nullptr;
  void* y = nullptr;
};

class LinearProducts {
 public:
  // Returns an engine on `device` with its workspace allocated.
  static absl::StatusOr<std::shared_ptr<LinearProducts>> Create(int device);
  ~LinearProducts();
  LinearProducts(const LinearProducts&) = delete;
  LinearProducts& operator=(const LinearProducts&) = delete;

  // Queues the product on `stream`; InvalidArgument for a shape cuBLASLt
  // cannot take, Internal when it offers no algorithm.
  absl::Status Run(const LinearProduct& product, cudaStream_t stream);

 private:
  // What the heuristic's choice depends on.
  struct Key {
    DType dtype;
    int64_t rows, in, out;
    bool bias, residual;
    int alignment_x, alignment_weight, alignment_bias, alignment_residual,
        alignment_y;
    bool operator==(const Key& other) const;
    template <typename H>
    friend H AbslHashValue(H h, const Key& k) {
      return H::combine(std::move(h), k.dtype, k.rows, k.in, k.out, k.bias,
                        k.residual, k.alignment_x, k.alignment_weight,
                        k.alignment_bias, k.alignment_residual, k.alignment_y);
    }
  };

  LinearProducts(int device, cublasLtHandle_t handle, void* workspace)
      : device_(device), handle_(handle), workspace_(workspace) {}

  int device_;
  cublasLtHandle_t handle_;
  void* workspace_;
  absl::flat_hash_map<Key, cublasLtMatmulAlgo_t> algorithms_;
};

}  // namespace models
}  // namespace dilated

#endif  // MODELS_CUDA_LINEAR_PRODUCTS_H_
