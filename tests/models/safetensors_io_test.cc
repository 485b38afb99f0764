// The safetensors side of the models: parameters of every stored dtype are
// converted to float32, absent names are NotFound, activations keep their
// dtype through a write and a read.

#include "models/safetensors_io.h"

#include <cstdint>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "io/safetensors.h"
#include "kernels/numeric.h"
#include "tests/models/model_test_util.h"

namespace dilated {
namespace models {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "/" + name;
}

TEST(SafetensorsParameterSourceTest, ConvertsEveryDtypeToFloat32) {
  const std::vector<double> f64 = {1.5, -2.25};
  const std::vector<float> f32 = {3.0f, 0.125f};
  const std::vector<uint16_t> f16 = {kernels::FloatToHalf(-0.5f),
                                     kernels::FloatToHalf(4.0f)};
  const std::vector<uint16_t> bf16 = {kernels::FloatToBFloat16(8.0f),
                                      kernels::FloatToBFloat16(-1.0f)};
  const std::string path = TempPath("dtypes.safetensors");
  ASSERT_TRUE(io::WriteSafetensors(
                  path, {{"a", io::SafetensorsDType::kF64, {2}, f64.data()},
                         {"b", io::SafetensorsDType::kF32, {1, 2}, f32.data()},
                         {"c", io::SafetensorsDType::kF16, {2}, f16.data()},
                         {"d", io::SafetensorsDType::kBF16, {2}, bf16.data()}})
                  .ok());
  absl::StatusOr<io::SafetensorsFile> file = io::ReadSafetensors(path);
  ASSERT_TRUE(file.ok()) << file.status();
  const SafetensorsParameterSource source(&*file);
  EXPECT_THAT(source.Names(), ElementsAre("a", "b", "c", "d"));
  EXPECT_EQ(*source.Shape("b"), (std::vector<int64_t>{1, 2}));
  float values[2];
  ASSERT_TRUE(source.Read("a", values).ok());
  EXPECT_THAT(values, ElementsAre(1.5f, -2.25f));
  ASSERT_TRUE(source.Read("b", values).ok());
  EXPECT_THAT(values, ElementsAre(3.0f, 0.125f));
  ASSERT_TRUE(source.Read("c", values).ok());
  EXPECT_THAT(values, ElementsAre(-0.5f, 4.0f));
  ASSERT_TRUE(source.Read("d", values).ok());
  EXPECT_THAT(values, ElementsAre(8.0f, -1.0f));
  const absl::Status missing = source.Read("e", values);
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.message()),
              HasSubstr("dtypes.safetensors' has no tensor 'e'"));
}

TEST(TensorFilesTest, ActivationsKeepTheirDtype) {
  const Tensor x = testing::RandomTensor(DType::kBFloat16, {2, 3, 4}, 1);
  const Tensor y = testing::RandomTensor(DType::kFloat32, {5}, 2);
  const std::string path = TempPath("activations.safetensors");
  ASSERT_TRUE(WriteTensors(path, {{"x", &x}, {"y", &y}}).ok());
  absl::StatusOr<io::SafetensorsFile> file = io::ReadSafetensors(path);
  ASSERT_TRUE(file.ok()) << file.status();
  absl::StatusOr<Tensor> x_read = ReadTensor(*file, "x");
  ASSERT_TRUE(x_read.ok()) << x_read.status();
  EXPECT_EQ(x_read->dtype(), DType::kBFloat16);
  EXPECT_EQ(x_read->shape(), x.shape());
  EXPECT_EQ(x_read->ToFloat32(), x.ToFloat32());
  EXPECT_EQ(ReadTensor(*file, "z").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(TensorFilesTest, Float64ActivationsAreRefused) {
  const std::vector<double> values = {1.0};
  const std::string path = TempPath("f64.safetensors");
  ASSERT_TRUE(io::WriteSafetensors(
                  path, {{"x", io::SafetensorsDType::kF64, {1}, values.data()}})
                  .ok());
  absl::StatusOr<io::SafetensorsFile> file = io::ReadSafetensors(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(ReadTensor(*file, "x").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace models
}  // namespace dilated
