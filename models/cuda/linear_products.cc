#include "models/cuda/linear_products.h"

#include <cstdint>
#include <memory>
#include <type_traits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/cuda_util.h"
#include "factory/status_macros.h"

namespace dilated {
namespace models {
namespace {

// cuBLASLt's recommendation for Hopper.
constexpr size_t kWorkspaceBytes = size_t{32} << 20;
// The largest alignment cuBLASLt's heuristic asks about.
constexpr int kMaxAlignment = 256;

cudaDataType CudaType(DType dtype) {
  switch (dtype) {
    case DType::kFloat16:
      return CUDA_R_16F;
    case DType::kBFloat16:
      return CUDA_R_16BF;
    default:  // the models hold float32, float16 or bfloat16 only
      break;
  }
  return CUDA_R_32F;
}

// Returns the largest power of two (at most kMaxAlignment) dividing the
// address; kMaxAlignment for null.
int Alignment(const void* pointer) {
  const uintptr_t address = reinterpret_cast<uintptr_t>(pointer);
  int alignment = 1;
  while (alignment < kMaxAlignment && address % (2 * alignment) == 0) {
    alignment *= 2;
  }
  return alignment;
}

using MatmulDesc = std::unique_ptr<std::remove_pointer_t<cublasLtMatmulDesc_t>,
                                   decltype(&cublasLtMatmulDescDestroy)>;
using MatrixLayout =
    std::unique_ptr<std::remove_pointer_t<cublasLtMatrixLayout_t>,
                    decltype(&cublasLtMatrixLayoutDestroy)>;
using Preference =
    std::unique_ptr<std::remove_pointer_t<cublasLtMatmulPreference_t>,
                    decltype(&cublasLtMatmulPreferenceDestroy)>;

template <typename T>
absl::Status SetAttribute(cublasLtMatmulDesc_t desc,
                          cublasLtMatmulDescAttributes_t attribute,
                          const T& value) {
  return CublasStatus(
      cublasLtMatmulDescSetAttribute(desc, attribute, &value, sizeof(value)),
      "cublasLtMatmulDescSetAttribute");
}

template <typename T>
absl::Status SetPreference(cublasLtMatmulPreference_t preference,
                           cublasLtMatmulPreferenceAttributes_t attribute,
                           const T& value) {
  return CublasStatus(cublasLtMatmulPreferenceSetAttribute(
                          preference, attribute, &value, sizeof(value)),
                      "cublasLtMatmulPreferenceSetAttribute");
}

// Returns a column-major rows x cols layout with leading dimension ld.
absl::StatusOr<MatrixLayout> Layout(cudaDataType type, int64_t rows,
                                    int64_t cols, int64_t ld) {
  cublasLtMatrixLayout_t layout = nullptr;
  DA_RETURN_IF_ERROR(
      CublasStatus(cublasLtMatrixLayoutCreate(&layout, type, rows, cols, ld),
                   "cublasLtMatrixLayoutCreate"));
  return MatrixLayout(layout, &cublasLtMatrixLayoutDestroy);
}

}  // namespace

bool LinearProducts::Key::operator==(const Key& other) const {
  return dtype == other.dtype && rows == other.rows && in == other.in &&
         out == other.out && bias == other.bias && residual == other.residual &&
         alignment_x == other.alignment_x &&
         alignment_weight == other.alignment_weight &&
         alignment_bias == other.alignment_bias &&
         alignment_residual == other.alignment_residual &&
         alignment_y == other.alignment_y;
}

absl::StatusOr<std::shared_ptr<LinearProducts>> LinearProducts::Create(
    int device) {
  ScopedCudaDevice scoped(device);
  DA_RETURN_IF_ERROR(scoped.status());
  cublasLtHandle_t handle = nullptr;
  DA_RETURN_IF_ERROR(CublasStatus(cublasLtCreate(&handle), "cublasLtCreate"));
  void* workspace = nullptr;
  const cudaError_t error = cudaMalloc(&workspace, kWorkspaceBytes);
  if (error != cudaSuccess) {
    cublasLtDestroy(handle);
    return CudaStatus(error, "cudaMalloc of the cuBLASLt workspace");
  }
  return std::shared_ptr<LinearProducts>(
      new LinearProducts(device, handle, workspace));
}

LinearProducts::~LinearProducts() {
  ScopedCudaDevice scoped(device_);
  cudaFree(workspace_);
  cublasLtDestroy(handle_);
}

absl::Status LinearProducts::Run(const LinearProduct& p, cudaStream_t stream) {
  if (p.rows < 0 || p.in <= 0 || p.out <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("a linear product needs rows >= 0 and positive in and "
                     "out features, got rows=",
                     p.rows, ", in=", p.in, ", out=", p.out));
  }
  if (p.rows == 0) return absl::OkStatus();
  ScopedCudaDevice scoped(device_);
  DA_RETURN_IF_ERROR(scoped.status());
  const cudaDataType type = CudaType(p.dtype);
  cublasLtMatmulDesc_t raw_desc = nullptr;
  DA_RETURN_IF_ERROR(CublasStatus(
      cublasLtMatmulDescCreate(&raw_desc, CUBLAS_COMPUTE_32F, CUDA_R_32F),
      "cublasLtMatmulDescCreate"));
  const MatmulDesc desc(raw_desc, &cublasLtMatmulDescDestroy);
  // Row-major y[rows, out] = x[rows, in] W[out, in]^T is, column-major,
  // y^T[out, rows] = (W^T)^T x^T with W^T stored [in, out], ld in; the bias
  // runs along y^T's rows.
  DA_RETURN_IF_ERROR(
      SetAttribute(raw_desc, CUBLASLT_MATMUL_DESC_TRANSA, CUBLAS_OP_T));
  DA_RETURN_IF_ERROR(
      SetAttribute(raw_desc, CUBLASLT_MATMUL_DESC_TRANSB, CUBLAS_OP_N));
  if (p.bias != nullptr) {
    DA_RETURN_IF_ERROR(SetAttribute(raw_desc, CUBLASLT_MATMUL_DESC_EPILOGUE,
                                    CUBLASLT_EPILOGUE_BIAS));
    DA_RETURN_IF_ERROR(
        SetAttribute(raw_desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, p.bias));
    DA_RETURN_IF_ERROR(SetAttribute(raw_desc,
                                    CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                    static_cast<int32_t>(type)));
  }
  DA_ASSIGN_OR_RETURN(const MatrixLayout weight_layout,
                      Layout(type, p.in, p.out, p.in));
  DA_ASSIGN_OR_RETURN(const MatrixLayout x_layout,
                      Layout(type, p.in, p.rows, p.in));
  DA_ASSIGN_OR_RETURN(const MatrixLayout y_layout,
                      Layout(type, p.out, p.rows, p.out));
  const void* c = p.residual != nullptr ? p.residual : p.y;

  const Key key{p.dtype,
                p.rows,
                p.in,
                p.out,
                p.bias != nullptr,
                p.residual != nullptr,
                Alignment(p.x),
                Alignment(p.weight),
                Alignment(p.bias),
                Alignment(c),
                Alignment(p.y)};
  auto cached = algorithms_.find(key);
  if (cached == algorithms_.end()) {
    cublasLtMatmulPreference_t raw_preference = nullptr;
    DA_RETURN_IF_ERROR(
        CublasStatus(cublasLtMatmulPreferenceCreate(&raw_preference),
                     "cublasLtMatmulPreferenceCreate"));
    const Preference preference(raw_preference,
                                &cublasLtMatmulPreferenceDestroy);
    DA_RETURN_IF_ERROR(SetPreference(raw_preference,
                                     CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                     uint64_t{kWorkspaceBytes}));
    for (const auto& [attribute, alignment] :
         {std::pair<cublasLtMatmulPreferenceAttributes_t, int>{
              CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, key.alignment_weight},
          {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, key.alignment_x},
          {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, key.alignment_residual},
          {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, key.alignment_y}}) {
      DA_RETURN_IF_ERROR(SetPreference(raw_preference, attribute,
                                       static_cast<uint32_t>(alignment)));
    }
    cublasLtMatmulHeuristicResult_t result = {};
    int found = 0;
    DA_RETURN_IF_ERROR(CublasStatus(
        cublasLtMatmulAlgoGetHeuristic(
            handle_, raw_desc, weight_layout.get(), x_layout.get(),
            y_layout.get(), y_layout.get(), raw_preference, 1, &result, &found),
        "cublasLtMatmulAlgoGetHeuristic"));
    if (found == 0) {
      return absl::InternalError(absl::StrCat(
          "cuBLASLt offers no algorithm for a linear product of ", p.rows,
          " rows, ", p.in, " inputs and ", p.out, " outputs"));
    }
    cached = algorithms_.emplace(key, result.algo).first;
  }
  const float alpha = 1.0f;
  const float beta = p.residual != nullptr ? 1.0f : 0.0f;
  return CublasStatus(
      cublasLtMatmul(handle_, raw_desc, &alpha, p.weight, weight_layout.get(),
                     p.x, x_layout.get(), &beta, c, y_layout.get(), p.y,
                     y_layout.get(), &cached->second, workspace_,
                     kWorkspaceBytes, stream),
      "cublasLtMatmul");
}

}  // namespace models
}  // namespace dilated
