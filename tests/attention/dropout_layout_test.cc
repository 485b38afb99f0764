// Attention dropout across sequence layouts: the mask depends on the
// sequence index and the positions in the sequence only, so a packed batch
// (cu_seqlens) and the same sequences right-padded with a key_padding_mask
// drop the same probabilities; and with padding between kept positions
// (row lists) "standard" and "improved" still agree. On every test device.

#include <algorithm>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "attention/registry.h"
#include "gtest/gtest.h"
#include "tests/testing/compare.h"
#include "tests/testing/test_device.h"
#include "tests/testing/test_tensor.h"

namespace dilated {
namespace {

using testing::AllClose;
using testing::DeviceBytes;
using testing::TestDevice;
using testing::TestTensor;

constexpr int64_t kHeads = 2;
constexpr int64_t kHeadDim = 16;
constexpr int64_t kRow = kHeads * kHeadDim;
constexpr uint64_t kSeed = 424242;
constexpr uint64_t kOffset = 17;
// Same rows, same mask: only float32 summation order may differ, far below
// the ~1e-2 a differently dropped probability makes.
constexpr testing::Tolerance kSame = {1e-5, 1e-4};

struct Results {
  std::vector<double> out, grad_q, grad_k, grad_v;
};

Results RunBothPasses(Attention& attention, TestDevice* device,
                      const std::vector<int64_t>& shape,
                      const std::vector<int64_t>& lse_shape,
                      const std::vector<std::vector<double>>& in,
                      const ForwardOptions& options) {
  const DType dtype = DType::kFloat32;
  std::vector<std::unique_ptr<TestTensor>> t;
  for (int i = 0; i < 8; ++i) {
    t.push_back(std::make_unique<TestTensor>(device, dtype, shape));
  }
  TestTensor lse(device, DType::kFloat32, lse_shape);
  for (int i = 0; i < 4; ++i) t[i]->Upload(in[i]);
  // q, k, v, grad_out, out, grad_q, grad_k, grad_v.
  Results r;
  const absl::Status forward =
      attention.Forward(t[0]->view(), t[1]->view(), t[2]->view(), t[4]->view(),
                        options, &lse.view());
  EXPECT_TRUE(forward.ok()) << forward;
  if (!forward.ok()) return r;
  const absl::Status backward = attention.Backward(
      t[0]->view(), t[1]->view(), t[2]->view(), t[4]->view(), lse.view(),
      t[3]->view(), t[5]->view(), t[6]->view(), t[7]->view(), options);
  EXPECT_TRUE(backward.ok()) << backward;
  r.out = t[4]->Download();
  r.grad_q = t[5]->Download();
  r.grad_k = t[6]->Download();
  r.grad_v = t[7]->Download();
  return r;
}

ForwardOptions Training(bool causal) {
  ForwardOptions options;
  options.is_causal = causal;
  options.training = true;
  options.dropout_seed = kSeed;
  options.dropout_offset = kOffset;
  return options;
}

std::unique_ptr<Attention> Create(const std::string& name) {
  AttentionConfig config;
  config.segment_lengths = {16, 32};
  config.dilation_rates = {1, 2};
  config.dropout = 0.3;
  return *CreateAttention(name, config);
}

bool Runs(const TestDevice* device, const std::string& name) {
  // "improved" on CUDA has no float32 kernels.
  return device->device().type == DeviceType::kCpu || name != "improved";
}

TEST(DropoutLayoutTest, PackedEqualsPaddedWithMask) {
  const std::vector<int64_t> lengths = {37, 5, 0, 64};
  std::vector<int64_t> starts = {0};
  for (int64_t length : lengths) starts.push_back(starts.back() + length);
  const int64_t total = starts.back();
  const int64_t batch = static_cast<int64_t>(lengths.size());
  const int64_t longest = *std::max_element(lengths.begin(), lengths.end());
  std::mt19937 rng(9);
  std::vector<std::vector<double>> packed_in(4);
  for (std::vector<double>& x : packed_in) {
    x = testing::RandomValues(total * kRow, 1.0, DType::kFloat32, &rng);
  }
  std::vector<std::vector<double>> padded_in(
      4, std::vector<double>(batch * longest * kRow, 0.0));
  std::vector<uint8_t> mask(batch * longest, 1);
  for (int64_t b = 0; b < batch; ++b) {
    std::fill(mask.begin() + b * longest,
              mask.begin() + b * longest + lengths[b], 0);
    for (int i = 0; i < 4; ++i) {
      std::copy(packed_in[i].begin() + starts[b] * kRow,
                packed_in[i].begin() + starts[b + 1] * kRow,
                padded_in[i].begin() + b * longest * kRow);
    }
  }
  for (TestDevice* device : testing::TestDevices()) {
    for (const char* name : {"standard", "improved", "auto"}) {
      if (!Runs(device, name)) continue;
      for (bool causal : {false, true}) {
        const std::string where = absl::StrCat(name, " causal=", causal, " ",
                                               DeviceName(device->device()));
        std::unique_ptr<Attention> attention = Create(name);
        std::vector<int32_t> offsets(starts.begin(), starts.end());
        const DeviceBytes offsets_on_device(device, offsets.data(),
                                            offsets.size() * sizeof(int32_t));
        ForwardOptions packed_options = Training(causal);
        packed_options.cu_seqlens =
            TensorView::Contiguous(offsets_on_device.data(), DType::kInt32,
                                   {batch + 1}, device->device());
        const Results packed =
            RunBothPasses(*attention, device, {total, kHeads, kHeadDim},
                          {kHeads, total}, packed_in, packed_options);
        const DeviceBytes mask_on_device(device, mask.data(), mask.size());
        ForwardOptions padded_options = Training(causal);
        padded_options.key_padding_mask =
            TensorView::Contiguous(mask_on_device.data(), DType::kBool,
                                   {batch, longest}, device->device());
        const Results padded = RunBothPasses(
            *attention, device, {batch, longest, kHeads, kHeadDim},
            {batch, kHeads, longest}, padded_in, padded_options);
        if (HasFailure()) return;
        for (int64_t b = 0; b < batch; ++b) {
          auto rows = [&](const std::vector<double>& x, int64_t begin) {
            return std::vector<double>(x.begin() + begin * kRow,
                                       x.begin() + (begin + lengths[b]) * kRow);
          };
          const std::string what = absl::StrCat(where, " sequence ", b);
          EXPECT_TRUE(AllClose(rows(packed.out, starts[b]),
                               rows(padded.out, b * longest), kSame))
              << what << " out";
          EXPECT_TRUE(AllClose(rows(packed.grad_q, starts[b]),
                               rows(padded.grad_q, b * longest), kSame))
              << what << " grad_q";
          EXPECT_TRUE(AllClose(rows(packed.grad_k, starts[b]),
                               rows(padded.grad_k, b * longest), kSame))
              << what << " grad_k";
          EXPECT_TRUE(AllClose(rows(packed.grad_v, starts[b]),
                               rows(padded.grad_v, b * longest), kSame))
              << what << " grad_v";
        }
      }
    }
  }
}

// Padding between kept positions makes the problems explicit row lists;
// the mask still follows the positions.
TEST(DropoutLayoutTest, StandardEqualsImprovedWithHolesInTheSelection) {
  const int64_t batch = 2;
  const int64_t n = 64;
  std::mt19937 rng(10);
  std::vector<std::vector<double>> in(4);
  for (std::vector<double>& x : in) {
    x = testing::RandomValues(batch * n * kRow, 1.0, DType::kFloat32, &rng);
  }
  std::bernoulli_distribution hole(0.25);
  std::vector<uint8_t> mask(batch * n);
  for (uint8_t& m : mask) m = hole(rng);
  TestDevice* cpu = testing::TestDevices()[0];
  for (bool causal : {false, true}) {
    Results results[2];
    const char* names[2] = {"standard", "improved"};
    for (int i = 0; i < 2; ++i) {
      std::unique_ptr<Attention> attention = Create(names[i]);
      const DeviceBytes mask_on_device(cpu, mask.data(), mask.size());
      ForwardOptions options = Training(causal);
      options.key_padding_mask = TensorView::Contiguous(
          mask_on_device.data(), DType::kBool, {batch, n}, cpu->device());
      results[i] = RunBothPasses(*attention, cpu, {batch, n, kHeads, kHeadDim},
                                 {batch, kHeads, n}, in, options);
    }
    const std::string where = absl::StrCat("causal=", causal);
    EXPECT_TRUE(AllClose(results[1].out, results[0].out, kSame)) << where;
    EXPECT_TRUE(AllClose(results[1].grad_q, results[0].grad_q, kSame)) << where;
    EXPECT_TRUE(AllClose(results[1].grad_k, results[0].grad_k, kSame)) << where;
    EXPECT_TRUE(AllClose(results[1].grad_v, results[0].grad_v, kSame)) << where;
  }
}

}  // namespace
}  // namespace dilated
