#include "io/safetensors.h"

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dilated {
namespace io {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string TempPath(const std::string& name) {
  return testing::TempDir() + "/" + name;
}

// Writes `bytes` to `path` as they are.
void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream stream(path, std::ios::binary | std::ios::trunc);
  stream.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(stream.good()) << path;
}

// Returns the little-endian 8-byte length prefix of the format.
std::string LengthPrefix(uint64_t length) {
  std::string prefix(8, '\0');
  for (int i = 0; i < 8; ++i) {
    prefix[i] = static_cast<char>(length & 0xff);
    length >>= 8;
  }
  return prefix;
}

// Writes a file with `header` (raw JSON text) followed by `data_bytes` zero
// bytes of data, and returns its path.
std::string WriteRaw(const std::string& name, const std::string& header,
                     size_t data_bytes) {
  const std::string path = TempPath(name);
  WriteBytes(path, LengthPrefix(header.size()) + header +
                       std::string(data_bytes, '\0'));
  return path;
}

// Expects reading `path` to fail with `code` and a message that names the
// file and contains every one of `parts`.
void ExpectRejected(const std::string& path, absl::StatusCode code,
                    const std::vector<std::string>& parts) {
  absl::StatusOr<SafetensorsFile> file = ReadSafetensors(path);
  ASSERT_FALSE(file.ok()) << path << " was accepted";
  EXPECT_EQ(file.status().code(), code) << file.status();
  EXPECT_THAT(std::string(file.status().message()), HasSubstr(path));
  for (const std::string& part : parts) {
    EXPECT_THAT(std::string(file.status().message()), HasSubstr(part));
  }
}

TEST(SafetensorsTest, RoundTripsEveryDTypeShapeAndMetadata) {
  const std::vector<float> f32 = {1.0f, -2.5f, 3.25f, 0.0f, 1e-3f, 7.0f};
  const std::vector<double> f64 = {0.1, -0.2, 1e300};
  const std::vector<uint16_t> f16 = {0x3c00, 0xc000, 0x3e00};   // 1, -2, 1.5
  const std::vector<uint16_t> bf16 = {0x3f80, 0xc000, 0x3fc0};  // 1, -2, 1.5
  const float scalar = 42.0f;
  const std::string path = TempPath("round_trip.safetensors");
  ASSERT_TRUE(
      WriteSafetensors(path,
                       {{"f16", SafetensorsDType::kF16, {3}, f16.data()},
                        {"f32", SafetensorsDType::kF32, {2, 3}, f32.data()},
                        {"bf16", SafetensorsDType::kBF16, {1, 3}, bf16.data()},
                        {"f64", SafetensorsDType::kF64, {3}, f64.data()},
                        {"scalar", SafetensorsDType::kF32, {}, &scalar},
                        {"empty", SafetensorsDType::kF32, {0, 4}, nullptr}},
                       {{"segment_lengths", "4,8"}, {"is_causal", "true"}})
          .ok());

  absl::StatusOr<SafetensorsFile> file = ReadSafetensors(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->path(), path);
  EXPECT_THAT(file->metadata(),
              ElementsAre(std::make_pair("is_causal", "true"),
                          std::make_pair("segment_lengths", "4,8")));
  std::vector<std::string> names;
  for (const SafetensorsTensor& t : file->tensors()) names.push_back(t.name);
  EXPECT_THAT(names,
              ElementsAre("bf16", "empty", "f16", "f32", "f64", "scalar"));

  absl::StatusOr<const SafetensorsTensor*> t32 = file->Find("f32");
  ASSERT_TRUE(t32.ok());
  EXPECT_EQ((*t32)->dtype, SafetensorsDType::kF32);
  EXPECT_THAT((*t32)->shape, ElementsAre(2, 3));
  EXPECT_EQ((*t32)->byte_size, 24);
  EXPECT_EQ(std::memcmp((*t32)->data, f32.data(), 24), 0);
  EXPECT_THAT(
      (*t32)->ToDoubles(),
      ElementsAre(1.0, -2.5, 3.25, 0.0, static_cast<double>(1e-3f), 7.0));

  EXPECT_THAT((*file->Find("f64"))->ToDoubles(), ElementsAre(0.1, -0.2, 1e300));
  EXPECT_THAT((*file->Find("f16"))->ToDoubles(), ElementsAre(1.0, -2.0, 1.5));
  EXPECT_THAT((*file->Find("bf16"))->ToDoubles(), ElementsAre(1.0, -2.0, 1.5));
  EXPECT_THAT((*file->Find("bf16"))->shape, ElementsAre(1, 3));
  EXPECT_THAT((*file->Find("scalar"))->ToDoubles(), ElementsAre(42.0));
  EXPECT_EQ((*file->Find("scalar"))->NumElements(), 1);
  EXPECT_EQ((*file->Find("empty"))->NumElements(), 0);
  EXPECT_EQ((*file->Find("empty"))->ShapeString(), "[0, 4]");
  for (const SafetensorsTensor& t : file->tensors()) {
    EXPECT_EQ(
        reinterpret_cast<uintptr_t>(t.data) % SafetensorsDTypeSize(t.dtype), 0u)
        << t.name;
  }
}

TEST(SafetensorsTest, ViewIsRowMajorOnTheCpu) {
  const std::vector<uint16_t> data(2 * 3 * 4, 0x3c00);
  const std::string path = TempPath("view.safetensors");
  ASSERT_TRUE(
      WriteSafetensors(path,
                       {{"x", SafetensorsDType::kBF16, {2, 3, 4}, data.data()}})
          .ok());
  absl::StatusOr<SafetensorsFile> file = ReadSafetensors(path);
  ASSERT_TRUE(file.ok()) << file.status();
  absl::StatusOr<TensorView> view = file->View("x");
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->dtype, DType::kBFloat16);
  EXPECT_EQ(view->device, Device::Cpu());
  EXPECT_EQ(view->ShapeString(), "[2, 3, 4]");
  EXPECT_EQ(view->strides[0], 12);
  EXPECT_EQ(view->strides[1], 4);
  EXPECT_EQ(view->strides[2], 1);
  EXPECT_EQ(view->data, (*file->Find("x"))->data);
}

TEST(SafetensorsTest, ViewOfF64IsInvalidArgument) {
  const double value = 1.0;
  const std::string path = TempPath("view_f64.safetensors");
  ASSERT_TRUE(
      WriteSafetensors(path, {{"d", SafetensorsDType::kF64, {1}, &value}})
          .ok());
  absl::StatusOr<SafetensorsFile> file = ReadSafetensors(path);
  ASSERT_TRUE(file.ok()) << file.status();
  absl::StatusOr<TensorView> view = file->View("d");
  EXPECT_EQ(view.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(view.status().message()), HasSubstr("'d'"));
  EXPECT_THAT(std::string(view.status().message()), HasSubstr("F64"));
}

TEST(SafetensorsTest, FindOfAMissingTensorListsThePresentOnes) {
  const float value = 1.0f;
  const std::string path = TempPath("find.safetensors");
  ASSERT_TRUE(
      WriteSafetensors(path, {{"q", SafetensorsDType::kF32, {1}, &value},
                              {"k", SafetensorsDType::kF32, {1}, &value}})
          .ok());
  absl::StatusOr<SafetensorsFile> file = ReadSafetensors(path);
  ASSERT_TRUE(file.ok()) << file.status();
  absl::StatusOr<const SafetensorsTensor*> v = file->Find("v");
  EXPECT_EQ(v.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(v.status().message()), HasSubstr("'v'"));
  EXPECT_THAT(std::string(v.status().message()), HasSubstr("k, q"));
  EXPECT_THAT(std::string(v.status().message()), HasSubstr(path));
}

TEST(SafetensorsTest, AcceptsMisalignedOffsetsAndRealigns) {
  // An F16 tensor first pushes the F32 tensor to offset 2.
  const std::string header =
      R"({"h":{"dtype":"F16","shape":[1],"data_offsets":[0,2]},)"
      R"("f":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}})";
  const float value = -3.5f;
  std::string data("\x00\x3c", 2);  // 1.0 in F16.
  data.append(reinterpret_cast<const char*>(&value), 4);
  const std::string path = TempPath("misaligned.safetensors");
  WriteBytes(path, LengthPrefix(header.size()) + header + data);
  absl::StatusOr<SafetensorsFile> file = ReadSafetensors(path);
  ASSERT_TRUE(file.ok()) << file.status();
  const SafetensorsTensor* f = *file->Find("f");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(f->data) % 4, 0u);
  EXPECT_THAT(f->ToDoubles(), ElementsAre(-3.5));
  EXPECT_THAT((*file->Find("h"))->ToDoubles(), ElementsAre(1.0));
}

TEST(SafetensorsTest, AcceptsMetadataOfStrings) {
  const std::string path =
      WriteRaw("metadata.safetensors",
               R"({"__metadata__":{"format":"pt"},)"
               R"("x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
               8);
  absl::StatusOr<SafetensorsFile> file = ReadSafetensors(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->metadata().at("format"), "pt");
  EXPECT_EQ(file->tensors().size(), 1u);
}

TEST(SafetensorsTest, RejectsAMissingFile) {
  const std::string path = TempPath("does_not_exist.safetensors");
  ExpectRejected(path, absl::StatusCode::kNotFound, {"cannot open"});
}

TEST(SafetensorsTest, RejectsADirectory) {
  ExpectRejected(testing::TempDir(), absl::StatusCode::kInvalidArgument,
                 {"not a regular file"});
}

TEST(SafetensorsTest, RejectsAFileShorterThanEightBytes) {
  const std::string path = TempPath("short.safetensors");
  WriteBytes(path, "abcde");
  ExpectRejected(path, absl::StatusCode::kDataLoss, {"5 bytes", "8-byte"});
}

TEST(SafetensorsTest, RejectsAHeaderLengthBeyondTheFile) {
  const std::string path = TempPath("long_header.safetensors");
  WriteBytes(path, LengthPrefix(1000) + "{}");
  ExpectRejected(path, absl::StatusCode::kDataLoss,
                 {"header length 1000", "2 bytes"});
}

TEST(SafetensorsTest, RejectsAHugeHeaderLength) {
  const std::string path = TempPath("huge_header.safetensors");
  WriteBytes(path, LengthPrefix(~uint64_t{0}) + "{}");
  ExpectRejected(path, absl::StatusCode::kDataLoss, {"header length"});
}

TEST(SafetensorsTest, RejectsMalformedJson) {
  ExpectRejected(WriteRaw("bad_json.safetensors", R"({"x": {"dtype": )", 0),
                 absl::StatusCode::kInvalidArgument, {"not valid JSON"});
}

TEST(SafetensorsTest, QuotesCorruptBytesAsPrintableText) {
  const std::string path =
      WriteRaw("corrupt_bytes.safetensors", "{\"q\xaa\n\": {", 0);
  absl::StatusOr<SafetensorsFile> file = ReadSafetensors(path);
  ASSERT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(file.status().message());
  EXPECT_THAT(message, HasSubstr("not valid JSON"));
  for (char c : message) {
    EXPECT_TRUE(c >= 0x20 && c < 0x7f)
        << static_cast<int>(c) << " in " << message;
  }
}

TEST(SafetensorsTest, RejectsAHeaderThatIsNotAnObject) {
  ExpectRejected(WriteRaw("array.safetensors", "[1, 2]", 0),
                 absl::StatusCode::kInvalidArgument,
                 {"header must be a JSON object", "array"});
}

TEST(SafetensorsTest, RejectsAnEntryThatIsNotAnObject) {
  ExpectRejected(WriteRaw("entry.safetensors", R"({"q": 5})", 0),
                 absl::StatusCode::kInvalidArgument,
                 {"tensor 'q'", "must be a JSON object", "number"});
}

TEST(SafetensorsTest, RejectsMetadataThatIsNotStrings) {
  ExpectRejected(
      WriteRaw("metadata_int.safetensors", R"({"__metadata__":{"n":3}})", 0),
      absl::StatusCode::kInvalidArgument, {"__metadata__", "'n'", "string"});
}

TEST(SafetensorsTest, RejectsAMissingDType) {
  ExpectRejected(WriteRaw("no_dtype.safetensors",
                          R"({"q":{"shape":[1],"data_offsets":[0,4]}})", 4),
                 absl::StatusCode::kInvalidArgument, {"tensor 'q'", "dtype"});
}

TEST(SafetensorsTest, RejectsAnUnknownDType) {
  ExpectRejected(
      WriteRaw("u16.safetensors",
               R"({"q":{"dtype":"U16","shape":[2],"data_offsets":[0,4]}})", 4),
      absl::StatusCode::kInvalidArgument, {"tensor 'q'", "dtype 'U16'"});
}

TEST(SafetensorsTest, RejectsANegativeShape) {
  ExpectRejected(
      WriteRaw("negative.safetensors",
               R"({"q":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4),
      absl::StatusCode::kInvalidArgument, {"tensor 'q'", "shape[0]", "-1"});
}

TEST(SafetensorsTest, RejectsANonIntegerShape) {
  ExpectRejected(
      WriteRaw("fraction.safetensors",
               R"({"q":{"dtype":"F32","shape":[1, 2.5],"data_offsets":[0,4]}})",
               4),
      absl::StatusCode::kInvalidArgument, {"tensor 'q'", "shape[1]", "2.5"});
  ExpectRejected(
      WriteRaw("string_extent.safetensors",
               R"({"q":{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}})",
               4),
      absl::StatusCode::kInvalidArgument, {"tensor 'q'", "shape[0]"});
}

TEST(SafetensorsTest, RejectsAShapeWhoseSizeOverflows) {
  ExpectRejected(
      WriteRaw("overflow.safetensors",
               R"({"q":{"dtype":"F32","shape":[4611686018427387904, 4],)"
               R"("data_offsets":[0,4]}})",
               4),
      absl::StatusCode::kInvalidArgument, {"tensor 'q'", "too large"});
}

TEST(SafetensorsTest, RejectsDataOffsetsThatAreNotAPair) {
  ExpectRejected(
      WriteRaw("one_offset.safetensors",
               R"({"q":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", 4),
      absl::StatusCode::kInvalidArgument,
      {"tensor 'q'", "data_offsets", "[0]"});
}

TEST(SafetensorsTest, RejectsDataOffsetsWithBeginAfterEnd) {
  ExpectRejected(
      WriteRaw("reversed.safetensors",
               R"({"q":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", 8),
      absl::StatusCode::kInvalidArgument,
      {"tensor 'q'", "[8, 4]", "begin <= end"});
}

TEST(SafetensorsTest, RejectsNegativeDataOffsets) {
  ExpectRejected(
      WriteRaw("negative_offset.safetensors",
               R"({"q":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", 4),
      absl::StatusCode::kInvalidArgument, {"tensor 'q'", "data_offsets[0]"});
}

TEST(SafetensorsTest, RejectsDataOffsetsOutOfRange) {
  ExpectRejected(
      WriteRaw("out_of_range.safetensors",
               R"({"q":{"dtype":"F32","shape":[1],)"
               R"("data_offsets":[1000000,1000004]}})",
               4),
      absl::StatusCode::kDataLoss,
      {"tensor 'q'", "[1000000, 1000004]", "data section of 4 bytes"});
}

TEST(SafetensorsTest, RejectsAByteSizeThatDoesNotMatchTheShape) {
  ExpectRejected(
      WriteRaw("size.safetensors",
               R"({"q":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8),
      absl::StatusCode::kInvalidArgument,
      {"tensor 'q'", "span 8 bytes", "needs 12"});
}

TEST(SafetensorsTest, RejectsOverlappingTensors) {
  ExpectRejected(
      WriteRaw("overlap.safetensors",
               R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
               R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
               12),
      absl::StatusCode::kInvalidArgument, {"'a'", "'b'", "overlap"});
}

TEST(SafetensorsTest, RejectsBytesThatBelongToNoTensor) {
  ExpectRejected(
      WriteRaw("gap.safetensors",
               R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
               R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
               12),
      absl::StatusCode::kInvalidArgument, {"bytes [4, 8)", "no tensor"});
  ExpectRejected(
      WriteRaw("trailing.safetensors",
               R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 8),
      absl::StatusCode::kInvalidArgument, {"bytes [4, 8)", "no tensor"});
}

TEST(SafetensorsTest, RejectsATruncatedFile) {
  const std::vector<float> data(64, 1.0f);
  const std::string path = TempPath("truncated.safetensors");
  ASSERT_TRUE(WriteSafetensors(
                  path, {{"q", SafetensorsDType::kF32, {8, 8}, data.data()}})
                  .ok());
  std::string bytes;
  {
    std::ifstream stream(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(stream),
                 std::istreambuf_iterator<char>());
  }
  ASSERT_TRUE(ReadSafetensors(path).ok());
  WriteBytes(path, bytes.substr(0, bytes.size() - 10));
  ExpectRejected(
      path, absl::StatusCode::kDataLoss,
      {"tensor 'q'", "[0, 256]", "data section of 246 bytes", "truncated"});
}

TEST(SafetensorsTest, WriteRejectsBadTensors) {
  const float value = 1.0f;
  const std::string path = TempPath("bad_write.safetensors");
  absl::Status duplicate =
      WriteSafetensors(path, {{"x", SafetensorsDType::kF32, {1}, &value},
                              {"x", SafetensorsDType::kF32, {1}, &value}});
  EXPECT_EQ(duplicate.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(duplicate.message()), HasSubstr("'x'"));

  absl::Status reserved = WriteSafetensors(
      path, {{"__metadata__", SafetensorsDType::kF32, {1}, &value}});
  EXPECT_EQ(reserved.code(), absl::StatusCode::kInvalidArgument);

  absl::Status negative =
      WriteSafetensors(path, {{"x", SafetensorsDType::kF32, {-1}, &value}});
  EXPECT_EQ(negative.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(negative.message()), HasSubstr("shape[0]"));

  absl::Status null_data =
      WriteSafetensors(path, {{"x", SafetensorsDType::kF32, {2}, nullptr}});
  EXPECT_EQ(null_data.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(null_data.message()), HasSubstr("null"));

  absl::Status no_directory =
      WriteSafetensors(TempPath("missing_directory/x.safetensors"),
                       {{"x", SafetensorsDType::kF32, {1}, &value}});
  EXPECT_FALSE(no_directory.ok());
  EXPECT_THAT(std::string(no_directory.message()), HasSubstr("cannot open"));
}

}  // namespace
}  // namespace io
}  // namespace dilated
