// The models on CUDA against the golden files of tests/data/models/: each
// case's host module is loaded as in golden_test.cc, copied to the GPU in
// the dtype of input.x, run on a stream there and compared with the float64
// PyTorch output, once per registered attention core.
//
// Tolerances are those of the CPU test, for the same reasons: the float32
// path runs cuBLAS in CUBLAS_COMPUTE_32F with the default math mode, so TF32
// is OFF and products accumulate in float32 as on the CPU (only the order of
// the sums differs); the 16-bit paths round every op's output to the storage
// type once, as the CPU does, and that rounding dominates.

#include <cuda_runtime_api.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "attention/registry.h"
#include "gtest/gtest.h"
#include "io/safetensors.h"
#include "models/cuda/cuda_multihead.h"
#include "models/cuda/cuda_transformer.h"
#include "models/cuda/device_tensor.h"
#include "models/safetensors_io.h"
#include "tests/models/golden_cases.h"
#include "tests/models/model_test_util.h"
#include "tests/testing/compare.h"

namespace dilated {
namespace models {
namespace {

using ::dilated::models::testing::CaseModule;
using ::dilated::models::testing::Cases;
using ::dilated::models::testing::GoldenCase;
using ::dilated::models::testing::GoldenDir;
using ::dilated::models::testing::LoadCaseModule;
using ::dilated::models::testing::ToDoubles;
using ::dilated::testing::AllClose;

// Uploads the case's module in x's dtype and runs it on `stream`.
absl::StatusOr<DeviceTensor> RunOnCuda(const GoldenCase& c, CaseModule& module,
                                       const DeviceTensor& x,
                                       const DeviceTensor* memory,
                                       cudaStream_t stream) {
  const DType dtype = x.dtype();
  if (module.multihead) {
    auto gpu =
        CudaMultiheadAttention::Upload(*module.multihead, dtype, 0, stream);
    if (!gpu.ok()) return gpu.status();
    if (memory == nullptr) return (*gpu)->Forward(x, c.is_causal, stream);
    return (*gpu)->Forward(x, *memory, *memory, c.is_causal, stream);
  }
  if (module.encoder) {
    auto gpu = CudaEncoderLayer::Upload(*module.encoder, dtype, 0, stream);
    if (!gpu.ok()) return gpu.status();
    return (*gpu)->Forward(x, c.is_causal, stream);
  }
  if (module.decoder) {
    auto gpu = CudaDecoderLayer::Upload(*module.decoder, dtype, 0, stream);
    if (!gpu.ok()) return gpu.status();
    return (*gpu)->Forward(x, *memory, c.is_causal, c.is_causal, stream);
  }
  auto gpu = CudaLongNet::Upload(*module.longnet, dtype, 0, stream);
  if (!gpu.ok()) return gpu.status();
  return (*gpu)->Forward(x, c.is_causal, stream);
}

struct Param {
  GoldenCase golden;
  std::string core;
};

void PrintTo(const Param& p, std::ostream* os) {
  *os << p.golden.name << " with the '" << p.core << "' core on CUDA";
}

class GoldenCudaTest : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override { ASSERT_EQ(cudaStreamCreate(&stream_), cudaSuccess); }
  void TearDown() override {
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }
  cudaStream_t stream_ = nullptr;
};

TEST_P(GoldenCudaTest, MatchesPyTorch) {
  const GoldenCase& c = GetParam().golden;
  const std::string path = GoldenDir() + c.name + ".safetensors";
  absl::StatusOr<io::SafetensorsFile> inputs = io::ReadSafetensors(path);
  ASSERT_TRUE(inputs.ok()) << inputs.status();
  absl::StatusOr<Tensor> x = ReadTensor(*inputs, "input.x");
  ASSERT_TRUE(x.ok()) << x.status();
  absl::StatusOr<Tensor> memory = ReadTensor(*inputs, "input.memory");
  absl::StatusOr<CaseModule> module = LoadCaseModule(c, GetParam().core, path);
  ASSERT_TRUE(module.ok()) << module.status();

  absl::StatusOr<DeviceTensor> x_device = DeviceTensor::Upload(*x, 0, stream_);
  ASSERT_TRUE(x_device.ok()) << x_device.status();
  std::optional<DeviceTensor> memory_device;
  if (memory.ok()) {
    absl::StatusOr<DeviceTensor> uploaded =
        DeviceTensor::Upload(*memory, 0, stream_);
    ASSERT_TRUE(uploaded.ok()) << uploaded.status();
    memory_device = *std::move(uploaded);
  }
  absl::StatusOr<DeviceTensor> y_device =
      RunOnCuda(c, *module, *x_device,
                memory_device ? &*memory_device : nullptr, stream_);
  if (GetParam().core == "improved" && x->dtype() == DType::kFloat32) {
    // The fused CUDA kernels take float16 and bfloat16 only, and say so
    // rather than running another implementation ("auto" picks "standard").
    EXPECT_EQ(y_device.status().code(), absl::StatusCode::kUnimplemented)
        << y_device.status();
    return;
  }
  ASSERT_TRUE(y_device.ok()) << y_device.status();
  absl::StatusOr<Tensor> y = y_device->Download(stream_);
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_EQ(y->dtype(), x->dtype());

  absl::StatusOr<io::SafetensorsFile> expected =
      io::ReadSafetensors(GoldenDir() + c.name + ".expected.safetensors");
  ASSERT_TRUE(expected.ok()) << expected.status();
  absl::StatusOr<const io::SafetensorsTensor*> want = expected->Find("y");
  ASSERT_TRUE(want.ok()) << want.status();
  EXPECT_EQ((*want)->shape, y->shape());
  EXPECT_TRUE(AllClose(ToDoubles(*y), (*want)->ToDoubles(), c.tolerance));
}

std::vector<Param> AllParams() {
  std::vector<Param> params;
  for (const std::string& core : DilatedAttentionNames()) {
    for (const GoldenCase& c : Cases()) params.push_back({c, core});
  }
  return params;
}

INSTANTIATE_TEST_SUITE_P(Files, GoldenCudaTest,
                         ::testing::ValuesIn(AllParams()),
                         [](const ::testing::TestParamInfo<Param>& info) {
                           return info.param.golden.name + "_" +
                                  info.param.core;
                         });

// A model on the GPU refuses inputs of another dtype, shape or length.
TEST(CudaModelErrorsTest, BadInputsAreInvalidArgument) {
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  const GoldenCase c = Cases()[0];
  absl::StatusOr<CaseModule> module =
      LoadCaseModule(c, "", GoldenDir() + c.name + ".safetensors");
  ASSERT_TRUE(module.ok()) << module.status();
  auto gpu = CudaMultiheadAttention::Upload(*module->multihead, DType::kFloat32,
                                            0, stream);
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  for (const Tensor& bad : {Tensor::Zeros(DType::kFloat16, {1, 16, 32}),
                            Tensor::Zeros(DType::kFloat32, {1, 16, 48}),
                            Tensor::Zeros(DType::kFloat32, {1, 12, 32})}) {
    absl::StatusOr<DeviceTensor> x = DeviceTensor::Upload(bad, 0, stream);
    ASSERT_TRUE(x.ok()) << x.status();
    absl::StatusOr<DeviceTensor> y = (*gpu)->Forward(*x, true, stream);
    EXPECT_EQ(y.status().code(), absl::StatusCode::kInvalidArgument)
        << bad.ShapeString() << " " << y.status();
  }
  cudaStreamSynchronize(stream);
  cudaStreamDestroy(stream);
}

}  // namespace
}  // namespace models
}  // namespace dilated
