// File: safetensors.h
//
// Reads and writes the safetensors format: an 8-byte little-endian header
// length N, N bytes of JSON mapping tensor names to {"dtype", "shape",
// "data_offsets": [begin, end]} (offsets relative to the data section that
// follows the header) plus an optional "__metadata__" object of strings, then
// the raw little-endian tensor bytes.
//
//   absl::StatusOr<dilated::io::SafetensorsFile> file =
//       dilated::io::ReadSafetensors("inputs.safetensors");
//   if (!file.ok()) return file.status();
//   DA_ASSIGN_OR_RETURN(dilated::TensorView q, file->View("q"));
//
//   std::vector<float> out(...);
//   DA_RETURN_IF_ERROR(dilated::io::WriteSafetensors(
//       "out.safetensors",
//       {{"out", dilated::io::SafetensorsDType::kF32, {2, 64, 8, 32},
//         out.data()}}));
//
// The reader checks the whole header before it exposes anything: every error
// is an absl::Status whose message names the file and, where one is at fault,
// the tensor.

#ifndef IO_SAFETENSORS_H_
#define IO_SAFETENSORS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "attention/tensor.h"

namespace dilated {
namespace io {

// The element types this library reads and writes. F64 is for test data (it
// has no TensorView); the attention itself takes F32, F16 and BF16; I32
// (cu_seqlens) and BOOL (key_padding_mask) are views too; I64 and U8 are
// read for inputs that callers convert.
enum class SafetensorsDType { kF64, kF32, kF16, kBF16, kI64, kI32, kBool, kU8 };

// Returns the format's name of `dtype`: "F64", "F32", "F16", "BF16", "I64",
// "I32", "BOOL" or "U8".
const char* SafetensorsDTypeName(SafetensorsDType dtype);

// Returns the size of one element of `dtype` in bytes.
int64_t SafetensorsDTypeSize(SafetensorsDType dtype);

// Returns the safetensors dtype that stores `dtype`.
SafetensorsDType ToSafetensorsDType(DType dtype);

// One tensor of a file that was read. `data` points into the owning
// SafetensorsFile and is aligned to the element size.
struct SafetensorsTensor {
  std::string name;
  SafetensorsDType dtype = SafetensorsDType::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  int64_t byte_size = 0;

  // Returns the number of elements (the product of the shape; 1 for rank 0).
  int64_t NumElements() const;

  // Returns every element converted to double, in row-major order.
  std::vector<double> ToDoubles() const;

  // Returns the shape as "[2, 64, 8, 32]".
  std::string ShapeString() const;
};

// The contents of a safetensors file, held in memory. Movable, not copyable
// (tensors point into its buffers).
class SafetensorsFile {
 public:
  SafetensorsFile(SafetensorsFile&&) = default;
  SafetensorsFile& operator=(SafetensorsFile&&) = default;

  // Returns the path the file was read from.
  const std::string& path() const { return path_; }

  // Returns the "__metadata__" entries (empty when the file has none).
  const std::map<std::string, std::string>& metadata() const {
    return metadata_;
  }

  // Returns every tensor, sorted by name.
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }

  // Returns the tensor called `name`, or NotFound naming the file and the
  // tensors it does have.
  absl::StatusOr<const SafetensorsTensor*> Find(absl::string_view name) const;

  // Returns a CPU TensorView (row-major) of the tensor called `name`; NotFound
  // as Find, InvalidArgument when its dtype is F64 or its rank exceeds
  // TensorView::kMaxRank. The view must not be written through.
  absl::StatusOr<TensorView> View(absl::string_view name) const;

 private:
  friend absl::StatusOr<SafetensorsFile> ReadSafetensors(
      const std::string& path);
  SafetensorsFile() = default;

  std::string path_;
  std::map<std::string, std::string> metadata_;
  std::vector<SafetensorsTensor> tensors_;
  // The data section, 8-byte aligned, and copies of tensors whose offsets in
  // it are not a multiple of their element size.
  std::vector<std::unique_ptr<uint64_t[]>> buffers_;
};

// Returns the contents of the safetensors file at `path`. Errors: NotFound
// when the file cannot be opened; DataLoss when it is shorter than its header
// or its tensors say (truncated); InvalidArgument for a malformed header
// (JSON, entries, dtypes, shapes, offsets, overlaps or gaps between tensors).
absl::StatusOr<SafetensorsFile> ReadSafetensors(const std::string& path);

// A tensor to write: `data` holds product(shape) row-major elements of
// `dtype` (it may be null only when that product is 0).
struct NamedTensor {
  std::string name;
  SafetensorsDType dtype = SafetensorsDType::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
};

// Writes `tensors` and `metadata` to `path` in the safetensors format, every
// tensor aligned to its element size. Returns InvalidArgument for an empty,
// duplicate or reserved ("__metadata__") name, a negative extent or null
// data, and Unavailable when the file cannot be written.
absl::Status WriteSafetensors(
    const std::string& path, absl::Span<const NamedTensor> tensors,
    const std::map<std::string, std::string>& metadata = {});

}  // namespace io
}  // namespace dilated

#endif  // IO_SAFETENSORS_H_
