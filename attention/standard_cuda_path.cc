#include "attention/standard_cuda_path.h"

#include <cublas_v2.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "attention/backend_registry.h"
#include "attention/cuda_scratch.h"
#include "attention/improved_cuda_layout.h"
#include "base/cuda_util.h"
#include "factory/status_macros.h"
#include "kernels/cuda/standard_kernels.h"

namespace dilated {
namespace {

using kernels::BackwardParams;
using kernels::DataType;
using kernels::ForwardParams;
using kernels::GroupParams;

// Scratch per chunk: large enough that the GEMMs of config-A sized problems
// (2,048 positions) run in batches of dozens, small next to an 80 GB card.
constexpr int64_t kScratchBudgetBytes = int64_t{1} << 30;
// Upper bound on the buffers carved per chunk (each rounded up by < 256 B).
constexpr int64_t kBuffers = 9;

// Returns this thread's cuBLAS handle for the current device, created on
// first use and kept for the life of the thread (handles are not safe to
// share between threads).
absl::StatusOr<cublasHandle_t> Handle() {
  thread_local absl::flat_hash_map<int, cublasHandle_t> handles;
  int device = 0;
  DA_RETURN_IF_ERROR(CudaStatus(cudaGetDevice(&device), "cudaGetDevice"));
  auto it = handles.find(device);
  if (it != handles.end()) return it->second;
  cublasHandle_t handle = nullptr;
  DA_RETURN_IF_ERROR(CublasStatus(cublasCreate(&handle), "cublasCreate"));
  handles.emplace(device, handle);
  return handle;
}

cudaDataType CudaType(DataType dtype) {
  switch (dtype) {
    case DataType::kFloat16:
      return CUDA_R_16F;
    case DataType::kBFloat16:
      return CUDA_R_16BF;
    case DataType::kFloat32:
    default:  // int32 and bool tensors never reach a float conversion
      break;
  }
  return CUDA_R_32F;
}

// One strided-batched product in cuBLAS's column-major terms:
// C[m x n] = alpha * op(A) op(B), A and B of `type`, C float32. A row-major
// X[r x c] is the column-major X^T with leading dimension c.
struct Gemm {
  cublasHandle_t handle;
  cudaDataType type;
  int batch;

  absl::Status Run(bool transpose_a, bool transpose_b, int64_t m, int64_t n,
                   int64_t k, float alpha, const void* a, int64_t lda,
                   int64_t stride_a, const void* b, int64_t ldb,
                   int64_t stride_b, float* c, int64_t ldc,
                   int64_t stride_c) const {
    const float beta = 0.0f;
    return CublasStatus(
        cublasGemmStridedBatchedEx(
            handle, transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N,
            transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(m),
            static_cast<int>(n), static_cast<int>(k), &alpha, a, type,
            static_cast<int>(lda), stride_a, b, type, static_cast<int>(ldb),
            stride_b, &beta, c, CUDA_R_32F, static_cast<int>(ldc), stride_c,
            batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
        "cublasGemmStridedBatchedEx");
  }
};

// The problems of every group of a call: the closed form (every table
// null) for fixed-length input with whole segments, else one device table
// of StandardProblems per group (kernels/cuda/standard_kernels.h) built
// from the call's problem list, row lists included.
class GroupTables {
 public:
  static absl::StatusOr<GroupTables> Make(const ForwardParams& p,
                                          cudaStream_t stream,
                                          memory::Allocator* workspace) {
    GroupTables tables;
    if (RequireFixedLayout("standard", p).ok()) return tables;
    DA_ASSIGN_OR_RETURN(std::unique_ptr<CallProblemList> call,
                        CallProblemList::Make(p, stream, workspace));
    const std::vector<kernels::Problem>& problems = call->list().problems();
    // Row lists first, then the problems (8-byte aligned after the rows).
    std::vector<int32_t> rows;
    std::vector<int64_t> rows_at(problems.size(), -1);
    for (size_t i = 0; i < problems.size(); ++i) {
      if (problems[i].rows == nullptr) continue;
      rows_at[i] = static_cast<int64_t>(rows.size());
      rows.insert(rows.end(), problems[i].rows,
                  problems[i].rows + problems[i].length);
    }
    const size_t rows_bytes = (rows.size() * sizeof(int32_t) + 7) / 8 * 8;
    const size_t problem_bytes =
        problems.size() * sizeof(kernels::gpu::StandardProblem);
    DA_ASSIGN_OR_RETURN(
        tables.scratch_,
        CudaScratch::Allocate(rows_bytes + problem_bytes, stream, workspace));
    auto* device_rows = static_cast<int32_t*>(tables.scratch_.data());
    auto* device_problems = reinterpret_cast<kernels::gpu::StandardProblem*>(
        static_cast<char*>(tables.scratch_.data()) + rows_bytes);
    // Problems run group by group in the list: one contiguous range each.
    std::vector<kernels::gpu::StandardProblem> host;
    host.reserve(problems.size());
    std::vector<int64_t> begin(p.num_groups + 1, 0);
    int group = 0;
    for (size_t i = 0; i < problems.size(); ++i) {
      const int gi =
          static_cast<int>(problems[i].group - call->params().groups);
      while (group < gi) begin[++group] = static_cast<int64_t>(i);
      host.push_back({problems[i].b, problems[i].row_base, problems[i].first,
                      problems[i].length,
                      rows_at[i] < 0 ? nullptr : device_rows + rows_at[i]});
    }
    while (group < p.num_groups) {
      begin[++group] = static_cast<int64_t>(problems.size());
    }
    // From pageable memory: each copy returns once its source is staged.
    if (!rows.empty()) {
      DA_RETURN_IF_ERROR(
          CudaStatus(cudaMemcpyAsync(device_rows, rows.data(),
                                     rows.size() * sizeof(int32_t),
                                     cudaMemcpyHostToDevice, stream),
                     "uploading the row lists"));
    }
    if (problem_bytes > 0) {
      DA_RETURN_IF_ERROR(CudaStatus(
          cudaMemcpyAsync(device_problems, host.data(), problem_bytes,
                          cudaMemcpyHostToDevice, stream),
          "uploading the problem tables"));
    }
    tables.table_.assign(p.num_groups, nullptr);
    tables.entries_.assign(p.num_groups, 0);
    for (int gi = 0; gi < p.num_groups; ++gi) {
      tables.table_[gi] = device_problems + begin[gi];
      tables.entries_[gi] = begin[gi + 1] - begin[gi];
    }
    return tables;
  }

  // Returns group gi's device table, or null for the closed form.
  const kernels::gpu::StandardProblem* table(int gi) const {
    return table_.empty() ? nullptr : table_[gi];
  }

  // Returns the problems (times heads) of group gi.
  int64_t Problems(const ForwardParams& p, int gi) const {
    const GroupParams& g = p.groups[gi];
    if (table_.empty()) {
      return p.batch * (p.seq_len / g.segment_length) * g.num_heads;
    }
    return entries_[gi] * g.num_heads;
  }

 private:
  GroupTables() : scratch_(*CudaScratch::Allocate(0, nullptr, nullptr)) {}

  CudaScratch scratch_;
  std::vector<const kernels::gpu::StandardProblem*> table_;
  std::vector<int64_t> entries_;
};

// Sizes of one problem's buffers.
struct ProblemBytes {
  int64_t rows;    // positions x head_dim elements of p.dtype
  int64_t square;  // positions x positions elements of p.dtype
  int64_t rows32;  // positions x head_dim floats
  int64_t square32;
};

ProblemBytes BytesOf(const ForwardParams& p, const GroupParams& g) {
  const int64_t es = kernels::gpu::ElementBytes(p.dtype);
  const int64_t l = g.positions;
  return ProblemBytes{l * p.head_dim * es, l * l * es, l * p.head_dim * 4,
                      l * l * 4};
}

// Returns how many of `problems` run at once given `per_problem` bytes.
int64_t ChunkProblems(int64_t problems, int64_t per_problem) {
  return std::max<int64_t>(
      1, std::min(problems, kScratchBudgetBytes / per_problem));
}

// Carves consecutive buffers, each rounded up to 256 bytes (alignment for
// cuBLAS and vector access), out of one scratch allocation.
class Carver {
 public:
  explicit Carver(void* base) : next_(static_cast<char*>(base)) {}
  template <typename T = void>
  T* Take(int64_t bytes) {
    char* p = next_;
    next_ += Rounded(bytes);
    return reinterpret_cast<T*>(p);
  }
  static int64_t Rounded(int64_t bytes) { return (bytes + 255) / 256 * 256; }

 private:
  char* next_;
};

}  // namespace

absl::Status StandardCudaForward(const ForwardParams& p, cudaStream_t stream,
                                 memory::Allocator* workspace) {
  namespace gpu = kernels::gpu;
  DA_ASSIGN_OR_RETURN(cublasHandle_t handle, Handle());
  DA_RETURN_IF_ERROR(
      CublasStatus(cublasSetStream(handle, stream), "cublasSetStream"));
  DA_RETURN_IF_ERROR(
      CudaStatus(gpu::StandardZero(p, p.out, stream), "zeroing out"));
  DA_RETURN_IF_ERROR(
      CudaStatus(gpu::StandardFillLse(p, stream), "filling lse"));
  DA_ASSIGN_OR_RETURN(const GroupTables tables,
                      GroupTables::Make(p, stream, workspace));

  int64_t scratch_bytes = 0;
  for (int i = 0; i < p.num_groups; ++i) {
    const GroupParams& g = p.groups[i];
    if (g.positions == 0) continue;
    const ProblemBytes b = BytesOf(p, g);
    const int64_t per = 3 * b.rows + b.square32 + b.square + b.rows32;
    scratch_bytes = std::max(
        scratch_bytes,
        ChunkProblems(tables.Problems(p, i), per) * per + kBuffers * 256);
  }
  DA_ASSIGN_OR_RETURN(CudaScratch scratch,
                      CudaScratch::Allocate(scratch_bytes, stream, workspace));

  for (int i = 0; i < p.num_groups; ++i) {
    const GroupParams& g = p.groups[i];
    if (g.positions == 0) continue;
    const ProblemBytes b = BytesOf(p, g);
    const int64_t per = 3 * b.rows + b.square32 + b.square + b.rows32;
    const int64_t total = tables.Problems(p, i);
    const int64_t chunk = ChunkProblems(total, per);
    const kernels::gpu::StandardProblem* table = tables.table(i);
    const int64_t l = g.positions;
    const int64_t d = p.head_dim;
    for (int64_t first = 0; first < total; first += chunk) {
      const int64_t count = std::min(chunk, total - first);
      Carver carve(scratch.data());
      void* q = carve.Take(count * b.rows);
      void* k = carve.Take(count * b.rows);
      void* v = carve.Take(count * b.rows);
      float* scores = carve.Take<float>(count * b.square32);
      void* probs = carve.Take(count * b.square);
      float* o = carve.Take<float>(count * b.rows32);
      const int64_t es = gpu::ElementBytes(p.dtype);
      const int64_t rows_stride = b.rows / es;
      const int64_t square_stride = b.square / es;
      DA_RETURN_IF_ERROR(CudaStatus(
          gpu::StandardGather(p, p.q, i, table, first, count, q, stream),
          "gather q"));
      DA_RETURN_IF_ERROR(CudaStatus(
          gpu::StandardGather(p, p.k, i, table, first, count, k, stream),
          "gather k"));
      DA_RETURN_IF_ERROR(CudaStatus(
          gpu::StandardGather(p, p.v, i, table, first, count, v, stream),
          "gather v"));
      const Gemm gemm{handle, CudaType(p.dtype), static_cast<int>(count)};
      // S = scale * Q K^T: column-major S^T = K Q^T.
      DA_RETURN_IF_ERROR(gemm.Run(true, false, l, l, d, p.softmax_scale, k, d,
                                  rows_stride, q, d, rows_stride, scores, l,
                                  b.square32 / 4));
      DA_RETURN_IF_ERROR(
          CudaStatus(gpu::StandardSoftmax(p, i, table, first, count, scores,
                                          probs, stream),
                     "softmax"));
      // O = P V: column-major O^T = V^T P^T.
      DA_RETURN_IF_ERROR(gemm.Run(false, false, d, l, l, 1.0f, v, d,
                                  rows_stride, probs, l, square_stride, o, d,
                                  b.rows32 / 4));
      DA_RETURN_IF_ERROR(
          CudaStatus(gpu::StandardScatter(p, o, p.output_scale, i, table, first,
                                          count, p.out, stream),
                     "scatter out"));
    }
  }
  return absl::OkStatus();
}

absl::Status StandardCudaBackward(const BackwardParams& bp, cudaStream_t stream,
                                  memory::Allocator* workspace) {
  namespace gpu = kernels::gpu;
  ForwardParams p = bp.forward;
  p.lse = nullptr;  // The recomputed softmax must not write the lse.
  DA_ASSIGN_OR_RETURN(cublasHandle_t handle, Handle());
  DA_RETURN_IF_ERROR(
      CublasStatus(cublasSetStream(handle, stream), "cublasSetStream"));
  for (const kernels::TensorParams* grad :
       {&bp.grad_q, &bp.grad_k, &bp.grad_v}) {
    DA_RETURN_IF_ERROR(
        CudaStatus(gpu::StandardZero(p, *grad, stream), "zeroing gradients"));
  }

  DA_ASSIGN_OR_RETURN(const GroupTables tables,
                      GroupTables::Make(p, stream, workspace));
  auto per_problem = [&](const ProblemBytes& b) {
    return 4 * b.rows + 2 * b.square32 + 2 * b.square + b.rows32;
  };
  int64_t scratch_bytes = 0;
  for (int i = 0; i < p.num_groups; ++i) {
    const GroupParams& g = p.groups[i];
    if (g.positions == 0) continue;
    const int64_t per = per_problem(BytesOf(p, g));
    scratch_bytes = std::max(
        scratch_bytes,
        ChunkProblems(tables.Problems(p, i), per) * per + kBuffers * 256);
  }
  DA_ASSIGN_OR_RETURN(CudaScratch scratch,
                      CudaScratch::Allocate(scratch_bytes, stream, workspace));

  for (int i = 0; i < p.num_groups; ++i) {
    const GroupParams& g = p.groups[i];
    if (g.positions == 0) continue;
    const ProblemBytes b = BytesOf(p, g);
    const int64_t total = tables.Problems(p, i);
    const int64_t chunk = ChunkProblems(total, per_problem(b));
    const kernels::gpu::StandardProblem* table = tables.table(i);
    const int64_t l = g.positions;
    const int64_t d = p.head_dim;
    const int64_t es = gpu::ElementBytes(p.dtype);
    const int64_t rs = b.rows / es;    // rows stride, elements
    const int64_t ss = b.square / es;  // square stride, elements
    const int64_t ss32 = b.square32 / 4;
    const int64_t rs32 = b.rows32 / 4;
    for (int64_t first = 0; first < total; first += chunk) {
      const int64_t count = std::min(chunk, total - first);
      Carver carve(scratch.data());
      void* q = carve.Take(count * b.rows);
      void* k = carve.Take(count * b.rows);
      void* v = carve.Take(count * b.rows);
      void* grad_o = carve.Take(count * b.rows);
      float* probs32 = carve.Take<float>(count * b.square32);
      float* grad_probs = carve.Take<float>(count * b.square32);
      void* probs = carve.Take(count * b.square);
      void* grad_scores = carve.Take(count * b.square);
      float* result = carve.Take<float>(count * b.rows32);
      DA_RETURN_IF_ERROR(CudaStatus(
          gpu::StandardGather(p, p.q, i, table, first, count, q, stream),
          "gather q"));
      DA_RETURN_IF_ERROR(CudaStatus(
          gpu::StandardGather(p, p.k, i, table, first, count, k, stream),
          "gather k"));
      DA_RETURN_IF_ERROR(CudaStatus(
          gpu::StandardGather(p, p.v, i, table, first, count, v, stream),
          "gather v"));
      DA_RETURN_IF_ERROR(
          CudaStatus(gpu::StandardGather(p, bp.grad_out, i, table, first, count,
                                         grad_o, stream),
                     "gather grad_out"));
      const Gemm gemm{handle, CudaType(p.dtype), static_cast<int>(count)};
      // S = scale * Q K^T, then P.
      DA_RETURN_IF_ERROR(gemm.Run(true, false, l, l, d, p.softmax_scale, k, d,
                                  rs, q, d, rs, probs32, l, ss32));
      DA_RETURN_IF_ERROR(
          CudaStatus(gpu::StandardSoftmax(p, i, table, first, count, probs32,
                                          probs, stream),
                     "softmax"));
      // dV = c P^T dO: column-major dV^T = dO^T P. With dropout, `probs`
      // holds the dropped probabilities (P M) and probs32 the undropped
      // ones, which the softmax backward needs; it applies M to dP.
      DA_RETURN_IF_ERROR(gemm.Run(false, true, d, l, l, p.output_scale, grad_o,
                                  d, rs, probs, l, ss, result, d, rs32));
      DA_RETURN_IF_ERROR(
          CudaStatus(gpu::StandardScatter(p, result, 1.0f, i, table, first,
                                          count, bp.grad_v, stream),
                     "scatter grad_v"));
      // dP = c dO V^T: column-major dP^T = V dO^T.
      DA_RETURN_IF_ERROR(gemm.Run(true, false, l, l, d, p.output_scale, v, d,
                                  rs, grad_o, d, rs, grad_probs, l, ss32));
      DA_RETURN_IF_ERROR(CudaStatus(
          gpu::StandardSoftmaxBackward(p, i, table, first, count, probs32,
                                       grad_probs, grad_scores, stream),
          "softmax backward"));
      // dQ = scale dS K: column-major dQ^T = K^T dS^T.
      DA_RETURN_IF_ERROR(gemm.Run(false, false, d, l, l, p.softmax_scale, k, d,
                                  rs, grad_scores, l, ss, result, d, rs32));
      DA_RETURN_IF_ERROR(
          CudaStatus(gpu::StandardScatter(p, result, 1.0f, i, table, first,
                                          count, bp.grad_q, stream),
                     "scatter grad_q"));
      // dK = scale dS^T Q: column-major dK^T = Q^T dS.
      DA_RETURN_IF_ERROR(gemm.Run(false, true, d, l, l, p.softmax_scale, q, d,
                                  rs, grad_scores, l, ss, result, d, rs32));
      DA_RETURN_IF_ERROR(
          CudaStatus(gpu::StandardScatter(p, result, 1.0f, i, table, first,
                                          count, bp.grad_k, stream),
                     "scatter grad_k"));
    }
  }
  return absl::OkStatus();
}

}  // namespace dilated
