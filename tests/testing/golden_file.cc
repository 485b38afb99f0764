#include "tests/testing/golden_file.h"

#include <algorithm>
#include <filesystem>
#include <memory>
#include <optional>
#include <system_error>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/testing/compare.h"
#include "tests/testing/test_tensor.h"

namespace dilated {
namespace testing {
namespace {

std::vector<double> Expected(const io::SafetensorsFile& file,
                             const std::string& name) {
  absl::StatusOr<const io::SafetensorsTensor*> tensor = file.Find(name);
  EXPECT_TRUE(tensor.ok()) << tensor.status();
  return tensor.ok() ? (*tensor)->ToDoubles() : std::vector<double>();
}

// Returns a tensor on `device` holding the input `name` of `file`.
std::unique_ptr<TestTensor> Input(const io::SafetensorsFile& file,
                                  const std::string& name, TestDevice* device) {
  absl::StatusOr<TensorView> view = file.View(name);
  EXPECT_TRUE(view.ok()) << view.status();
  if (!view.ok()) return nullptr;
  auto tensor = std::make_unique<TestTensor>(
      device, view->dtype,
      std::vector<int64_t>(view->shape.begin(),
                           view->shape.begin() + view->rank));
  tensor->Upload((*file.Find(name))->ToDoubles());
  return tensor;
}

// Copies the optional layout tensor `name` (cu_seqlens, key_padding_mask) of
// `file` to `device` and points *view at it; returns null (and leaves *view
// unset) when the file has none.
std::unique_ptr<DeviceBytes> LayoutInput(const io::SafetensorsFile& file,
                                         const std::string& name,
                                         TestDevice* device,
                                         std::optional<TensorView>* view) {
  if (!file.Find(name).ok()) return nullptr;
  absl::StatusOr<TensorView> host = file.View(name);
  EXPECT_TRUE(host.ok()) << host.status();
  if (!host.ok()) return nullptr;
  auto bytes = std::make_unique<DeviceBytes>(
      device, host->data, host->NumElements() * DTypeSize(host->dtype));
  *view = *host;
  (*view)->data = bytes->data();
  (*view)->device = device->device();
  return bytes;
}

}  // namespace

std::vector<std::string> GoldenFiles(const std::string& dir) {
  std::vector<std::string> files;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    const std::string path = entry.path().string();
    if (absl::EndsWith(path, ".safetensors")) files.push_back(path);
  }
  std::sort(files.begin(), files.end());
  return files;
}

void CheckGoldenFile(Attention& attention, const io::SafetensorsFile& file,
                     bool is_causal, TestDevice* device) {
  const std::unique_ptr<TestTensor> q = Input(file, "q", device);
  const std::unique_ptr<TestTensor> k = Input(file, "k", device);
  const std::unique_ptr<TestTensor> v = Input(file, "v", device);
  const std::unique_ptr<TestTensor> grad_out = Input(file, "grad_out", device);
  ASSERT_TRUE(q && k && v && grad_out);
  const DType dtype = q->view().dtype;
  const std::vector<int64_t> shape(q->view().shape.begin(),
                                   q->view().shape.begin() + q->view().rank);
  // Packed files ([total, h, d], with cu_seqlens) have lse [h, total].
  const bool packed = shape.size() == 3;
  TestTensor out(device, dtype, shape);
  TestTensor lse(device, DType::kFloat32,
                 packed ? std::vector<int64_t>{shape[1], shape[0]}
                        : std::vector<int64_t>{shape[0], shape[2], shape[1]});
  TestTensor grad_q(device, dtype, shape);
  TestTensor grad_k(device, dtype, shape);
  TestTensor grad_v(device, dtype, shape);

  ForwardOptions options;
  options.is_causal = is_causal;
  const std::unique_ptr<DeviceBytes> cu_seqlens =
      LayoutInput(file, "cu_seqlens", device, &options.cu_seqlens);
  const std::unique_ptr<DeviceBytes> mask =
      LayoutInput(file, "key_padding_mask", device, &options.key_padding_mask);
  const absl::Status forward = attention.Forward(
      q->view(), k->view(), v->view(), out.view(), options, &lse.view());
  if (forward.code() == absl::StatusCode::kUnimplemented &&
      device->device().type != DeviceType::kCpu) {
    GTEST_SKIP() << forward;
  }
  ASSERT_TRUE(forward.ok()) << forward;
  EXPECT_TRUE(
      AllClose(out.Download(), Expected(file, "out"), OutputTolerance(dtype)))
      << "out";
  // The log-sum-exp is float32 whatever the storage type; its error comes
  // from the float32 scores of inputs that are exact in every dtype.
  EXPECT_TRUE(AllClose(lse.Download(), Expected(file, "lse"), {1e-4, 1e-4}))
      << "lse";

  const absl::Status backward = attention.Backward(
      q->view(), k->view(), v->view(), out.view(), lse.view(), grad_out->view(),
      grad_q.view(), grad_k.view(), grad_v.view(), options);
  ASSERT_TRUE(backward.ok()) << backward;
  const Tolerance tolerance = GradientTolerance(dtype);
  EXPECT_TRUE(AllClose(grad_q.Download(), Expected(file, "grad_q"), tolerance))
      << "grad_q";
  EXPECT_TRUE(AllClose(grad_k.Download(), Expected(file, "grad_k"), tolerance))
      << "grad_k";
  EXPECT_TRUE(AllClose(grad_v.Download(), Expected(file, "grad_v"), tolerance))
      << "grad_v";
}

}  // namespace testing
}  // namespace dilated
