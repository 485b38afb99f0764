// CUDA "improved" (fused kernels), "standard" (unfused path) and "auto"
// against the naive float64 oracle: forward out and lse, and the three
// gradients, over configurations that exercise the strided views (uneven
// head split, several groups with one rate, offset >= segment length, b > 1,
// causal or not, head_dim 32/64/128/256 and odd multiples of 8,
// float16/bfloat16/float32, q/k/v packed in one buffer) and the fused
// kernels' problem-list path (partial segments, packed variable-length
// batches, key padding at the start or end of each sequence). Outputs are
// poisoned with NaN before each call, so an element the kernels fail to
// write fails the comparison. What "improved" refuses on CUDA (float32,
// padding between kept positions) is checked to be Unimplemented.
//
// Built a second time as fused_backward_cuda_test, with
// DA_TEST_FUSED_BACKWARD defined: the same cases with DA_FUSED_BACKWARD=1,
// so that those whose groups select multiples of 128 rows per segment at
// head_dim 64 and 128 run the one-kernel backward (fused_backward.h).

#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "attention/attention.h"
#include "attention/config.h"
#include "attention/registry.h"
#include "attention/tensor.h"
#include "gtest/gtest.h"
#include "kernels/numeric.h"
#include "tests/testing/oracle.h"

namespace dilated {
namespace {

#ifdef DA_TEST_FUSED_BACKWARD
// The switch is read once, at the first backward call: set before any runs.
[[maybe_unused]] const int kFusedBackwardSwitch =
    setenv("DA_FUSED_BACKWARD", "1", 1);
#endif

using testing::OracleBackward;
using testing::OracleForward;
using testing::OracleProblem;

// Positions [begin, end) of a batch entry that a key padding mask keeps;
// the others are padding.
struct KeptRange {
  int64_t begin;
  int64_t end;
};

struct Case {
  std::string name;
  int64_t batch;
  int64_t seq;
  int64_t heads;
  int64_t head_dim;
  std::vector<int64_t> segments;
  std::vector<int64_t> rates;
  DType dtype;
  bool causal;
  bool packed_qkv = false;  // q, k, v as views of one [b, n, 3, h, d] buffer
  // When > 0, key row p is scaled by 1 + key_growth * p / n, so that the
  // largest score of a query grows from key tile to key tile by more than
  // the kernels' running-maximum slack (the rescaling path is taken late
  // in the sequence, not only on the first tiles).
  double key_growth = 0.0;
  // Packed variable-length layout when not empty: the sequences' lengths
  // (batch and seq unused); cu_seqlens on the host instead of the device
  // when cu_seqlens_on_host.
  std::vector<int64_t> seq_lens = {};
  bool cu_seqlens_on_host = false;
  // A key padding mask when not empty: batch entry b keeps kept[b].
  std::vector<KeptRange> kept = {};

  bool packed() const { return !seq_lens.empty(); }
  // Returns the extent of the tensors' batch axis (1 when packed).
  int64_t StorageBatch() const { return packed() ? 1 : batch; }
  // Returns the rows of each batch entry (all rows when packed).
  int64_t Rows() const {
    if (!packed()) return seq;
    int64_t total = 0;
    for (int64_t length : seq_lens) total += length;
    return total;
  }
};

Case PackedCase(std::string name, std::vector<int64_t> seq_lens, int64_t heads,
                int64_t head_dim, std::vector<int64_t> segments,
                std::vector<int64_t> rates, DType dtype, bool causal,
                bool cu_seqlens_on_host = false) {
  Case c{std::move(name),  0,     0,     heads, head_dim, std::move(segments),
         std::move(rates), dtype, causal};
  c.seq_lens = std::move(seq_lens);
  c.cu_seqlens_on_host = cu_seqlens_on_host;
  return c;
}

Case PaddedCase(Case c, std::vector<KeptRange> kept) {
  c.kept = std::move(kept);
  return c;
}

// Relative L2 error bounds. float16 stores 11 significant bits (rounding
// 2^-12 relative), bfloat16 8 (2^-9); the kernels round P (and dS) to the
// input type before the second product and round the results, so errors of
// a few roundings are expected. float32 runs in float32 throughout.
double ForwardTolerance(DType dtype) {
  switch (dtype) {
    case DType::kFloat16:
      return 4e-3;
    case DType::kBFloat16:
      return 3e-2;
    case DType::kFloat32:
      break;
  }
  return 1e-5;
}

// Gradients add the rounding of dS = P o (dP - D), where the difference
// cancels, so their bounds are wider.
double GradientTolerance(DType dtype) {
  switch (dtype) {
    case DType::kFloat16:
      return 1e-2;
    case DType::kBFloat16:
      return 6e-2;
    case DType::kFloat32:
      break;
  }
  return 1e-4;
}

void CheckCuda(cudaError_t error, const char* what) {
  ASSERT_EQ(error, cudaSuccess) << what << ": " << cudaGetErrorString(error);
}

// Device memory freed on destruction.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) {
    CheckCuda(cudaMalloc(&data_, bytes), "cudaMalloc");
  }
  ~DeviceBuffer() { cudaFree(data_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  // Fills every byte with 0xff: NaN in float16, bfloat16 and float32.
  void Poison() const { CheckCuda(cudaMemset(data_, 0xff, bytes_), "memset"); }

 private:
  void* data_ = nullptr;
  size_t bytes_;
};

// Returns `x` rounded to `dtype` (the value the device sees).
double RoundTo(double x, DType dtype) {
  const float f = static_cast<float>(x);
  switch (dtype) {
    case DType::kFloat16:
      return kernels::HalfToFloat(kernels::FloatToHalf(f));
    case DType::kBFloat16:
      return kernels::BFloat16ToFloat(kernels::FloatToBFloat16(f));
    case DType::kFloat32:
      break;
  }
  return f;
}

// Writes `x` as `dtype` at `dst`.
void StoreAs(double x, DType dtype, void* dst) {
  const float f = static_cast<float>(x);
  if (dtype == DType::kFloat32) {
    std::memcpy(dst, &f, 4);
  } else {
    const uint16_t h = dtype == DType::kFloat16 ? kernels::FloatToHalf(f)
                                                : kernels::FloatToBFloat16(f);
    std::memcpy(dst, &h, 2);
  }
}

double LoadAs(const void* src, DType dtype) {
  if (dtype == DType::kFloat32) {
    float f;
    std::memcpy(&f, src, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, src, 2);
  return dtype == DType::kFloat16 ? kernels::HalfToFloat(h)
                                  : kernels::BFloat16ToFloat(h);
}

// Returns ||a - b|| / ||b||; NaN anywhere in `a` gives infinity.
double RelativeError(const std::vector<double>& a,
                     const std::vector<double>& b) {
  double diff = 0.0;
  double norm = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i])) return std::numeric_limits<double>::infinity();
    diff += (a[i] - b[i]) * (a[i] - b[i]);
    norm += b[i] * b[i];
  }
  return std::sqrt(diff / std::max(norm, 1e-300));
}

std::vector<double> RandomRounded(size_t count, DType dtype,
                                  std::mt19937_64* rng) {
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<double> values(count);
  for (double& x : values) x = RoundTo(normal(*rng), dtype);
  return values;
}

// Returns the [batch, seq] key padding mask of `c` (empty without one).
std::vector<uint8_t> PaddingMask(const Case& c) {
  std::vector<uint8_t> mask;
  if (c.kept.empty()) return mask;
  mask.assign(c.batch * c.seq, 1);
  for (int64_t b = 0; b < c.batch; ++b) {
    for (int64_t n = c.kept[b].begin; n < c.kept[b].end; ++n) {
      mask[b * c.seq + n] = 0;
    }
  }
  return mask;
}

// Returns the cu_seqlens of a packed case.
std::vector<int32_t> Offsets(const Case& c) {
  std::vector<int32_t> offsets = {0};
  for (int64_t length : c.seq_lens) {
    offsets.push_back(offsets.back() + static_cast<int32_t>(length));
  }
  return offsets;
}

// Returns a device copy of `bytes` at `data` (at least one byte).
std::unique_ptr<DeviceBuffer> Upload(const void* data, size_t bytes) {
  auto buffer = std::make_unique<DeviceBuffer>(bytes == 0 ? 1 : bytes);
  CheckCuda(cudaMemcpy(buffer->data(), data, bytes, cudaMemcpyHostToDevice),
            "upload");
  return buffer;
}

class DilatedAttentionCudaTest
    : public ::testing::TestWithParam<std::tuple<Case, std::string>> {};

TEST_P(DilatedAttentionCudaTest, MatchesNaiveOracle) {
  const Case& c = std::get<0>(GetParam());
  const std::string& implementation = std::get<1>(GetParam());
  // Tensors are [sb, n, h, d] ([total, h, d] when packed: sb = 1, n = total)
  // and the lse [sb, h, n].
  const int64_t sb = c.StorageBatch(), n = c.Rows(), h = c.heads,
                d = c.head_dim;
  const int64_t elements = sb * n * h * d;
  const int64_t es = DTypeSize(c.dtype);
  const Device device = Device::Cuda(0);

  std::mt19937_64 rng(std::hash<std::string>()(c.name) + 17);
  const std::vector<double> q = RandomRounded(elements, c.dtype, &rng);
  std::vector<double> k = RandomRounded(elements, c.dtype, &rng);
  if (c.key_growth > 0.0) {
    for (int64_t i = 0; i < elements; ++i) {
      const int64_t position = (i / (h * d)) % n;
      k[i] = RoundTo(k[i] * (1.0 + c.key_growth * position / n), c.dtype);
    }
  }
  const std::vector<double> v = RandomRounded(elements, c.dtype, &rng);
  const std::vector<double> grad_out = RandomRounded(elements, c.dtype, &rng);

  // Returns a contiguous view of `data` in the case's layout.
  auto contiguous = [&](void* data) {
    return c.packed()
               ? TensorView::Contiguous(data, c.dtype, {n, h, d}, device)
               : TensorView::Contiguous(data, c.dtype, {sb, n, h, d}, device);
  };
  // Inputs: separate contiguous tensors, or views into one packed buffer.
  DeviceBuffer qkv(3 * elements * es);
  std::vector<char> host(3 * elements * es);
  std::vector<TensorView> inputs(3);
  for (int t = 0; t < 3; ++t) {
    const std::vector<double>& src = t == 0 ? q : (t == 1 ? k : v);
    // Element strides of the batch entry, row and head axes.
    int64_t strides[3] = {n * h * d, h * d, d};
    TensorView& view = inputs[t];
    char* base = static_cast<char*>(qkv.data());
    if (c.packed_qkv) {
      view = TensorView::Contiguous(base + t * h * d * es, c.dtype,
                                    {sb, n, h, d}, device);
      view.strides = {n * 3 * h * d, 3 * h * d, d, 1};
      strides[0] = n * 3 * h * d;
      strides[1] = 3 * h * d;
    } else {
      view = contiguous(base + t * elements * es);
    }
    const int64_t view_offset = (static_cast<char*>(view.data) - base) / es;
    for (int64_t i0 = 0; i0 < sb; ++i0) {
      for (int64_t i1 = 0; i1 < n; ++i1) {
        for (int64_t i2 = 0; i2 < h; ++i2) {
          for (int64_t i3 = 0; i3 < d; ++i3) {
            const int64_t offset = view_offset + i0 * strides[0] +
                                   i1 * strides[1] + i2 * strides[2] + i3;
            StoreAs(src[((i0 * n + i1) * h + i2) * d + i3], c.dtype,
                    host.data() + offset * es);
          }
        }
      }
    }
  }
  CheckCuda(
      cudaMemcpy(qkv.data(), host.data(), host.size(), cudaMemcpyHostToDevice),
      "upload qkv");
  std::vector<char> grad_host(elements * es);
  for (int64_t i = 0; i < elements; ++i) {
    StoreAs(grad_out[i], c.dtype, grad_host.data() + i * es);
  }
  DeviceBuffer grad_out_buffer(elements * es);
  CheckCuda(cudaMemcpy(grad_out_buffer.data(), grad_host.data(),
                       grad_host.size(), cudaMemcpyHostToDevice),
            "upload grad_out");

  DeviceBuffer out(elements * es), lse(sb * h * n * sizeof(float));
  DeviceBuffer grad_q(elements * es), grad_k(elements * es),
      grad_v(elements * es);
  for (const DeviceBuffer* buffer : {&out, &lse, &grad_q, &grad_k, &grad_v}) {
    buffer->Poison();
  }
  auto view_of = [&](const DeviceBuffer& buffer) {
    return contiguous(buffer.data());
  };
  const TensorView lse_view =
      c.packed()
          ? TensorView::Contiguous(lse.data(), DType::kFloat32, {h, n}, device)
          : TensorView::Contiguous(lse.data(), DType::kFloat32, {sb, h, n},
                                   device);

  AttentionConfig config;
  config.segment_lengths = c.segments;
  config.dilation_rates = c.rates;
  ASSERT_TRUE(config.Validate().ok());
  absl::StatusOr<std::unique_ptr<Attention>> created =
      CreateAttention(implementation, config);
  ASSERT_TRUE(created.ok()) << created.status();
  Attention& attention = **created;
  cudaStream_t stream;
  CheckCuda(cudaStreamCreate(&stream), "cudaStreamCreate");
  ForwardOptions options;
  options.is_causal = c.causal;
  options.stream = stream;
  // Layout tensors: cu_seqlens on the device (or the host), the mask on the
  // device.
  const std::vector<int32_t> offsets = Offsets(c);
  std::unique_ptr<DeviceBuffer> offsets_on_device;
  if (c.packed()) {
    const int64_t entries = static_cast<int64_t>(offsets.size());
    void* data = const_cast<int32_t*>(offsets.data());
    Device where = Device::Cpu();
    if (!c.cu_seqlens_on_host) {
      offsets_on_device = Upload(offsets.data(), entries * sizeof(int32_t));
      data = offsets_on_device->data();
      where = device;
    }
    options.cu_seqlens =
        TensorView::Contiguous(data, DType::kInt32, {entries}, where);
  }
  const std::vector<uint8_t> mask = PaddingMask(c);
  std::unique_ptr<DeviceBuffer> mask_on_device;
  if (!mask.empty()) {
    mask_on_device = Upload(mask.data(), mask.size());
    options.key_padding_mask = TensorView::Contiguous(
        mask_on_device->data(), DType::kBool, {c.batch, c.seq}, device);
  }

  absl::Status status = attention.Forward(inputs[0], inputs[1], inputs[2],
                                          view_of(out), options, &lse_view);
  ASSERT_TRUE(status.ok()) << status;
  status =
      attention.Backward(inputs[0], inputs[1], inputs[2], view_of(out),
                         lse_view, view_of(grad_out_buffer), view_of(grad_q),
                         view_of(grad_k), view_of(grad_v), options);
  ASSERT_TRUE(status.ok()) << status;
  CheckCuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  CheckCuda(cudaGetLastError(), "kernels");

  auto download = [&](const DeviceBuffer& buffer) {
    std::vector<char> raw(buffer.bytes());
    CheckCuda(cudaMemcpy(raw.data(), buffer.data(), raw.size(),
                         cudaMemcpyDeviceToHost),
              "download");
    std::vector<double> values(elements);
    for (int64_t i = 0; i < elements; ++i) {
      values[i] = LoadAs(raw.data() + i * es, c.dtype);
    }
    return values;
  };
  std::vector<float> lse_host(sb * h * n);
  CheckCuda(cudaMemcpy(lse_host.data(), lse.data(), lse.bytes(),
                       cudaMemcpyDeviceToHost),
            "download lse");

  OracleProblem problem;
  problem.batch = c.batch;
  problem.seq_len = c.seq;
  problem.num_heads = h;
  problem.head_dim = d;
  problem.segment_lengths = c.segments;
  problem.dilation_rates = c.rates;
  problem.is_causal = c.causal;
  problem.softmax_scale = 1.0 / std::sqrt(static_cast<double>(d));
  problem.key_padding_mask = mask;
  problem.seq_lens = c.seq_lens;
  std::vector<double> expected_out, expected_lse;
  OracleForward(problem, q, k, v, &expected_out, &expected_lse);
  const std::vector<double> out_host = download(out);
  EXPECT_LT(RelativeError(out_host, expected_out), ForwardTolerance(c.dtype));
  // Unselected and padded rows are exactly zero with lse -inf; selected lse
  // within float32 accumulation error of the float64 value.
  int64_t lse_mismatches = 0;
  int64_t zero_mismatches = 0;
  for (int64_t i0 = 0; i0 < sb; ++i0) {
    for (int64_t i2 = 0; i2 < h; ++i2) {
      for (int64_t i1 = 0; i1 < n; ++i1) {
        const int64_t at = (i0 * h + i2) * n + i1;
        const double want = expected_lse[at];
        const double got = lse_host[at];
        if (std::isinf(want)) {
          if (!(std::isinf(got) && got < 0)) ++lse_mismatches;
          for (int64_t i3 = 0; i3 < d; ++i3) {
            if (out_host[((i0 * n + i1) * h + i2) * d + i3] != 0.0) {
              ++zero_mismatches;
            }
          }
        } else if (!(std::fabs(got - want) <= 2e-3 * (1.0 + std::fabs(want)))) {
          ++lse_mismatches;
        }
      }
    }
  }
  EXPECT_EQ(lse_mismatches, 0);
  EXPECT_EQ(zero_mismatches, 0);

  std::vector<double> expected_grad_q, expected_grad_k, expected_grad_v;
  OracleBackward(problem, q, k, v, grad_out, &expected_grad_q, &expected_grad_k,
                 &expected_grad_v);
  EXPECT_LT(RelativeError(download(grad_q), expected_grad_q),
            GradientTolerance(c.dtype))
      << "grad_q";
  EXPECT_LT(RelativeError(download(grad_k), expected_grad_k),
            GradientTolerance(c.dtype))
      << "grad_k";
  EXPECT_LT(RelativeError(download(grad_v), expected_grad_v),
            GradientTolerance(c.dtype))
      << "grad_v";

  // The backward pass is deterministic: a second run is bitwise identical
  // (grad_q is where contributions of many thread blocks meet).
  const std::vector<double> first_grad_q = download(grad_q);
  const std::vector<double> first_grad_k = download(grad_k);
  const std::vector<double> first_grad_v = download(grad_v);
  grad_q.Poison();
  grad_k.Poison();
  grad_v.Poison();
  status =
      attention.Backward(inputs[0], inputs[1], inputs[2], view_of(out),
                         lse_view, view_of(grad_out_buffer), view_of(grad_q),
                         view_of(grad_k), view_of(grad_v), options);
  ASSERT_TRUE(status.ok()) << status;
  CheckCuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  auto same_bits = [](const std::vector<double>& a,
                      const std::vector<double>& b) {
    return a.size() == b.size() &&
           std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
  };
  EXPECT_TRUE(same_bits(first_grad_q, download(grad_q))) << "grad_q";
  EXPECT_TRUE(same_bits(first_grad_k, download(grad_k))) << "grad_k";
  EXPECT_TRUE(same_bits(first_grad_v, download(grad_v))) << "grad_v";
  CheckCuda(cudaStreamDestroy(stream), "cudaStreamDestroy");
}

const DType kF16 = DType::kFloat16;
const DType kBF16 = DType::kBFloat16;
const DType kF32 = DType::kFloat32;

// Fixed-length input with whole segments that the fused kernels take (the
// closed-form path): run on "improved" and "standard".
std::vector<Case> FusedCases() {
  return {
      {"d64_f16", 1, 256, 4, 64, {64, 128}, {1, 2}, kF16, false},
      {"d64_f16_causal", 1, 256, 4, 64, {64, 128}, {1, 2}, kF16, true},
      {"uneven_heads_bf16_causal",
       1,
       256,
       5,
       64,
       {32, 64, 128},
       {1, 2, 4},
       kBF16,
       true},
      {"same_rate_groups_f16",
       2,
       256,
       6,
       64,
       {64, 64, 128},
       {2, 2, 2},
       kF16,
       false},
      {"offset_past_segment_f16",
       1,
       64,
       3,
       64,
       {16, 16, 2},
       {1, 1, 4},
       kF16,
       true},
      {"d32_b2_f16_causal", 2, 512, 4, 32, {128, 256}, {1, 2}, kF16, true},
      {"d128_b2_bf16", 2, 512, 4, 128, {128, 512}, {1, 4}, kBF16, false},
      {"d128_f16_causal", 1, 512, 3, 128, {256, 512}, {1, 2}, kF16, true},
      {"d40_f16", 1, 256, 2, 40, {64, 256}, {1, 2}, kF16, false},
      {"d72_bf16_causal", 1, 256, 2, 72, {128, 256}, {2, 4}, kBF16, true},
      {"d256_f16_causal", 1, 256, 2, 256, {128, 256}, {1, 2}, kF16, true},
      {"d160_bf16", 1, 128, 2, 160, {64, 128}, {1, 2}, kBF16, false},
      // Several query blocks and key tiles per problem at head_dim 256,
      // without the mask.
      {"d256_b2_f16", 2, 512, 4, 256, {256, 512}, {1, 2}, kF16, false},
      {"long_segments_f16", 1, 1024, 2, 64, {512, 1024}, {1, 4}, kF16, false},
      // Every group 128 rows or a multiple per segment, b = 2: the
      // one-kernel backward's shape (fused_backward_cuda_test).
      {"rows128_b2_f16_causal",
       2,
       1024,
       4,
       64,
       {256, 1024},
       {1, 2},
       kF16,
       true},
      // Sequences of 300 and 200 selected rows: several 64-row tiles, the
      // last one partial.
      {"partial_tiles_f16", 1, 600, 3, 64, {300, 600}, {1, 3}, kF16, false},
      {"partial_tiles_bf16_causal",
       2,
       600,
       3,
       64,
       {300, 600},
       {1, 3},
       kBF16,
       true},
      {"long_segments_bf16_causal",
       1,
       1024,
       2,
       64,
       {512, 1024},
       {1, 4},
       kBF16,
       true},
      {"packed_qkv_f16_causal",
       2,
       256,
       4,
       64,
       {64, 256},
       {1, 4},
       kF16,
       true,
       true},
      {"growing_scores_f16",
       1,
       1024,
       2,
       64,
       {512, 1024},
       {1, 2},
       kF16,
       false,
       false,
       12.0},
      {"growing_scores_bf16_causal",
       1,
       1024,
       2,
       64,
       {1024, 512},
       {1, 2},
       kBF16,
       true,
       false,
       12.0},
  };
}

// Calls "improved" refuses on CUDA (float32, head_dim not a multiple of 8):
// run on "auto", which takes "standard" for them, and on "standard".
std::vector<Case> UnfusedCases() {
  return {
      {"f32_causal", 1, 256, 3, 64, {64, 128, 256}, {1, 2, 4}, kF32, true},
      {"f32_d40_b2", 2, 128, 2, 40, {64, 128}, {1, 2}, kF32, false},
      {"d20_unaligned_f16", 1, 128, 2, 20, {64, 128}, {1, 2}, kF16, false},
  };
}

// Layouts only the fused kernels' problem-list path runs on CUDA: partial
// segments, packed batches and padding at either end of each sequence; run
// on "improved".
std::vector<Case> LayoutCases() {
  return {
      // n not a multiple of the segments: last segments of 188 positions.
      {"partial_d64_f16", 1, 700, 4, 64, {256, 512}, {1, 2}, kF16, false},
      {"partial_d64_bf16_causal",
       2,
       700,
       4,
       64,
       {256, 512},
       {1, 2},
       kBF16,
       true},
      // Whole segments of 100 next to partial ones of 88 (offsets 1 and 2).
      {"partial_d128_f16_causal",
       1,
       600,
       3,
       128,
       {100, 256, 512},
       {1, 2, 4},
       kF16,
       true},
      {"partial_d128_bf16", 2, 1000, 4, 128, {384, 768}, {1, 3}, kBF16, false},
      // The last segment of 512 holds one position, before the offset 1:
      // its problem has no rows and zeroes it.
      {"partial_offset_past_end_f16_causal",
       1,
       513,
       2,
       64,
       {256, 512},
       {1, 4},
       kF16,
       true},
      {"partial_d32_f16", 2, 333, 4, 32, {128, 256}, {1, 2}, kF16, false},
      {"partial_d256_bf16_causal",
       1,
       300,
       2,
       256,
       {128, 256},
       {1, 2},
       kBF16,
       true},
      {"partial_d40_f16", 1, 200, 2, 40, {64, 128}, {1, 2}, kF16, false},
      PackedCase("packed_d64_f16", {700, 1, 0, 64, 2049}, 4, 64, {256, 1024},
                 {1, 2}, kF16, false),
      PackedCase("packed_d64_bf16_causal", {700, 1, 0, 64, 2049}, 4, 64,
                 {256, 1024}, {1, 2}, kBF16, true),
      PackedCase("packed_d128_f16_causal", {700, 1, 0, 64, 2049}, 2, 128,
                 {512, 2048}, {1, 4}, kF16, true),
      // Every sequence shorter than every segment.
      PackedCase("packed_short_d64_f16_causal", {5, 100, 17, 250}, 4, 64,
                 {512, 1024}, {1, 2}, kF16, true),
      PackedCase("packed_short_d128_bf16", {5, 100, 17, 250}, 3, 128,
                 {512, 1024}, {1, 2}, kBF16, false),
      PackedCase("packed_d32_bf16_causal", {130, 64, 1, 300}, 4, 32, {64, 128},
                 {1, 2}, kBF16, true),
      PackedCase("packed_d256_f16", {130, 64, 1, 300}, 2, 256, {64, 128},
                 {1, 2}, kF16, false),
      PackedCase("packed_host_cu_seqlens_f16", {700, 1, 0, 64, 2049}, 4, 64,
                 {256, 1024}, {1, 2}, kF16, false,
                 /*cu_seqlens_on_host=*/true),
      // Right padding per batch entry (one entry fully padded).
      PaddedCase({"right_padding_d64_f16",
                  3,
                  512,
                  4,
                  64,
                  {128, 256},
                  {1, 2},
                  kF16,
                  false},
                 {{0, 512}, {0, 301}, {0, 0}}),
      PaddedCase({"right_padding_d64_bf16_causal",
                  3,
                  512,
                  4,
                  64,
                  {128, 256},
                  {1, 2},
                  kBF16,
                  true},
                 {{0, 512}, {0, 77}, {0, 400}}),
      // Right padding and partial segments together.
      PaddedCase({"right_padding_partial_d128_bf16_causal",
                  2,
                  600,
                  4,
                  128,
                  {256, 512},
                  {1, 2},
                  kBF16,
                  true},
                 {{0, 600}, {0, 250}}),
      // Left padding: each problem's first row moves right.
      PaddedCase({"left_padding_d64_f16_causal",
                  2,
                  384,
                  4,
                  64,
                  {128, 384},
                  {1, 3},
                  kF16,
                  true},
                 {{100, 384}, {0, 384}}),
      PaddedCase({"both_ends_padding_d32_f16",
                  2,
                  256,
                  2,
                  32,
                  {64, 256},
                  {1, 2},
                  kF16,
                  false},
                 {{3, 250}, {70, 130}}),
  };
}

std::vector<std::tuple<Case, std::string>> AllParams() {
  std::vector<std::tuple<Case, std::string>> params;
  for (const Case& c : FusedCases()) {
    for (const char* implementation : {"improved", "standard"}) {
      params.emplace_back(c, implementation);
    }
  }
  for (const Case& c : UnfusedCases()) {
    for (const char* implementation : {"auto", "standard"}) {
      params.emplace_back(c, implementation);
    }
  }
  for (const Case& c : LayoutCases()) {
    for (const char* implementation : {"improved", "standard"}) {
      params.emplace_back(c, implementation);
    }
  }
  // float32 layouts run on "standard" only (and through "auto").
  for (Case c : LayoutCases()) {
    c.name += "_as_f32";
    c.dtype = DType::kFloat32;
    for (const char* implementation : {"auto", "standard"}) {
      params.emplace_back(c, implementation);
    }
  }
  return params;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, DilatedAttentionCudaTest, ::testing::ValuesIn(AllParams()),
    [](const ::testing::TestParamInfo<std::tuple<Case, std::string>>& info) {
      return absl::StrCat(std::get<1>(info.param), "_",
                          std::get<0>(info.param).name);
    });

// Small fixed-length device tensors of one dtype, zero-filled.
class SmallCall {
 public:
  SmallCall(DType dtype, int64_t batch, int64_t seq, int64_t heads,
            int64_t head_dim)
      : shape_{batch, seq, heads, head_dim},
        bytes_(batch * seq * heads * head_dim * DTypeSize(dtype)),
        dtype_(dtype),
        lse_(batch * heads * seq * sizeof(float)) {
    for (int i = 0; i < kTensors; ++i) {
      buffers_.push_back(std::make_unique<DeviceBuffer>(bytes_));
      CheckCuda(cudaMemset(buffers_.back()->data(), 0, bytes_), "memset");
    }
  }

  // Returns tensor i: q, k, v, out, grad_out, grad_q, grad_k, grad_v.
  TensorView Tensor(int i) const {
    return TensorView::Contiguous(buffers_[i]->data(), dtype_,
                                  {shape_[0], shape_[1], shape_[2], shape_[3]},
                                  Device::Cuda(0));
  }
  TensorView Lse() const {
    return TensorView::Contiguous(lse_.data(), DType::kFloat32,
                                  {shape_[0], shape_[2], shape_[1]},
                                  Device::Cuda(0));
  }

  absl::Status Forward(Attention& attention,
                       const ForwardOptions& options) const {
    const TensorView lse = Lse();
    return attention.Forward(Tensor(0), Tensor(1), Tensor(2), Tensor(3),
                             options, &lse);
  }
  absl::Status Backward(Attention& attention,
                        const ForwardOptions& options) const {
    return attention.Backward(Tensor(0), Tensor(1), Tensor(2), Tensor(3), Lse(),
                              Tensor(4), Tensor(5), Tensor(6), Tensor(7),
                              options);
  }

 private:
  static constexpr int kTensors = 8;
  int64_t shape_[4];
  size_t bytes_;
  DType dtype_;
  DeviceBuffer lse_;
  std::vector<std::unique_ptr<DeviceBuffer>> buffers_;
};

std::unique_ptr<Attention> Create(const std::string& name) {
  AttentionConfig config;
  config.segment_lengths = {64, 128};
  config.dilation_rates = {1, 2};
  absl::StatusOr<std::unique_ptr<Attention>> attention =
      CreateAttention(name, config);
  EXPECT_TRUE(attention.ok()) << attention.status();
  return attention.ok() ? std::move(*attention) : nullptr;
}

// "improved" by name refuses float32 CUDA tensors (the fused kernels are
// 16-bit only); "auto" runs them on "standard".
TEST(DilatedAttentionCudaBackendTest, ImprovedRefusesFloat32AutoRunsIt) {
  const SmallCall call(DType::kFloat32, 1, 128, 2, 64);
  const ForwardOptions options;
  std::unique_ptr<Attention> improved = Create("improved");
  ASSERT_NE(improved, nullptr);
  absl::Status status = call.Forward(*improved, options);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented) << status;
  status = call.Backward(*improved, options);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented) << status;

  std::unique_ptr<Attention> automatic = Create("auto");
  ASSERT_NE(automatic, nullptr);
  status = call.Forward(*automatic, options);
  EXPECT_TRUE(status.ok()) << status;
  status = call.Backward(*automatic, options);
  EXPECT_TRUE(status.ok()) << status;
  CheckCuda(cudaDeviceSynchronize(), "kernels");
}

// A mask with padding between kept positions of a segment needs listed rows,
// which the fused kernels do not take: Unimplemented, forward and backward.
TEST(DilatedAttentionCudaBackendTest, PaddingBetweenRowsRunsOnStandardOnly) {
  constexpr int64_t kBatch = 2;
  constexpr int64_t kSeq = 256;
  const SmallCall call(DType::kFloat16, kBatch, kSeq, 2, 64);
  // Batch entry 1 pads position 10 of the first segment (rate 1 selects
  // positions 9 and 11 around it) and its last 20 positions.
  std::vector<uint8_t> mask(kBatch * kSeq, 0);
  mask[kSeq + 10] = 1;
  for (int64_t i = kSeq - 20; i < kSeq; ++i) mask[kSeq + i] = 1;
  const std::unique_ptr<DeviceBuffer> mask_on_device =
      Upload(mask.data(), mask.size());
  ForwardOptions options;
  options.key_padding_mask = TensorView::Contiguous(
      mask_on_device->data(), DType::kBool, {kBatch, kSeq}, Device::Cuda(0));

  std::unique_ptr<Attention> improved = Create("improved");
  ASSERT_NE(improved, nullptr);
  for (const absl::Status& status :
       {call.Forward(*improved, options), call.Backward(*improved, options)}) {
    EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented) << status;
    EXPECT_NE(status.message().find("padding between kept positions"),
              std::string::npos)
        << status;
  }
  // "standard" runs row lists, and "auto" moves on to it (the values are
  // checked against the oracle by the conformance suite's padding_holes
  // shapes).
  for (const char* name : {"standard", "auto"}) {
    std::unique_ptr<Attention> attention = Create(name);
    ASSERT_NE(attention, nullptr);
    EXPECT_TRUE(call.Forward(*attention, options).ok()) << name;
    EXPECT_TRUE(call.Backward(*attention, options).ok()) << name;
  }
}

}  // namespace
}  // namespace dilated
