#include "attention/block_sparse_packed.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace dilated {
namespace {

int64_t ElementBytes(kernels::DataType dtype) {
  return dtype == kernels::DataType::kFloat32 ? 4 : 2;
}

// `t` moved forward by `rows` rows.
kernels::TensorParams Offset(const kernels::TensorParams& t, int64_t rows,
                             kernels::DataType dtype) {
  kernels::TensorParams moved = t;
  moved.data =
      static_cast<char*>(t.data) + rows * t.stride_n * ElementBytes(dtype);
  return moved;
}

// The fixed-length call of rows start .. start + length - 1.
kernels::ForwardParams Sequence(const kernels::ForwardParams& p, int64_t start,
                                int64_t length) {
  kernels::ForwardParams s = p;
  s.q = Offset(p.q, start, p.dtype);
  s.k = Offset(p.k, start, p.dtype);
  s.v = Offset(p.v, start, p.dtype);
  s.out = Offset(p.out, start, p.dtype);
  // Packed lse is [heads, total]: row start of every head.
  if (p.lse != nullptr) s.lse = p.lse + start;
  s.batch = 1;
  s.seq_len = length;
  s.key_seq_len = length;
  s.sequence.cu_seqlens = nullptr;
  s.sequence.max_seq_len = length;
  return s;
}

// Returns (start, length) of every sequence, or the InvalidArgument of the
// first whose length is not a multiple of block_size.
absl::StatusOr<std::vector<std::pair<int64_t, int64_t>>> Ranges(
    const kernels::ForwardParams& p, int64_t block_size) {
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (int64_t i = 0; i < p.batch; ++i) {
    const int64_t start = p.sequence.cu_seqlens[i];
    const int64_t length = p.sequence.cu_seqlens[i + 1] - start;
    if (length % block_size != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cu_seqlens: sequence ", i, " has ", length,
          " tokens; block_sparse needs every packed sequence length to be a "
          "multiple of block_size ",
          block_size));
    }
    ranges.emplace_back(start, length);
  }
  return ranges;
}

}  // namespace

absl::StatusOr<std::vector<PackedSequence<kernels::ForwardParams>>>
SplitPackedForward(const kernels::ForwardParams& params, int64_t block_size) {
  absl::StatusOr<std::vector<std::pair<int64_t, int64_t>>> ranges =
      Ranges(params, block_size);
  if (!ranges.ok()) return ranges.status();
  std::vector<PackedSequence<kernels::ForwardParams>> sequences;
  for (size_t i = 0; i < ranges->size(); ++i) {
    const auto [start, length] = (*ranges)[i];
    if (length == 0) continue;
    sequences.push_back(
        {static_cast<int64_t>(i), Sequence(params, start, length)});
  }
  return sequences;
}

absl::StatusOr<std::vector<PackedSequence<kernels::BackwardParams>>>
SplitPackedBackward(const kernels::BackwardParams& params, int64_t block_size) {
  absl::StatusOr<std::vector<std::pair<int64_t, int64_t>>> ranges =
      Ranges(params.forward, block_size);
  if (!ranges.ok()) return ranges.status();
  const kernels::DataType dtype = params.forward.dtype;
  std::vector<PackedSequence<kernels::BackwardParams>> sequences;
  for (size_t i = 0; i < ranges->size(); ++i) {
    const auto [start, length] = (*ranges)[i];
    if (length == 0) continue;
    kernels::BackwardParams s = params;
    s.forward = Sequence(params.forward, start, length);
    s.grad_out = Offset(params.grad_out, start, dtype);
    s.grad_q = Offset(params.grad_q, start, dtype);
    s.grad_k = Offset(params.grad_k, start, dtype);
    s.grad_v = Offset(params.grad_v, start, dtype);
    sequences.push_back({static_cast<int64_t>(i), s});
  }
  return sequences;
}

}  // namespace dilated
