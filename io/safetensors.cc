#include "io/safetensors.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <new>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "factory/status_macros.h"
#include "kernels/numeric.h"
#include "nlohmann/json.hpp"

namespace dilated {
namespace io {
namespace {

using Json = nlohmann::json;

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr char kMetadataKey[] = "__metadata__";

// A tensor entry of the header, checked, before its data is attached.
struct Entry {
  std::string name;
  SafetensorsDType dtype;
  std::vector<int64_t> shape;
  int64_t begin;
  int64_t end;
};

absl::StatusOr<SafetensorsDType> ParseDType(absl::string_view name) {
  for (SafetensorsDType dtype :
       {SafetensorsDType::kF64, SafetensorsDType::kF32, SafetensorsDType::kF16,
        SafetensorsDType::kBF16, SafetensorsDType::kI64, SafetensorsDType::kI32,
        SafetensorsDType::kBool, SafetensorsDType::kU8}) {
    if (name == SafetensorsDTypeName(dtype)) return dtype;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "dtype '", name,
      "' is not supported; expected F64, F32, F16, BF16, I64, I32, BOOL or "
      "U8"));
}

// Returns "object", "array", "string", ... for error messages.
std::string JsonTypeName(const Json& value) { return value.type_name(); }

// Returns `text` with every byte outside printable ASCII written as \xNN, so
// that a message quoting a corrupt file stays one line of valid text.
std::string Printable(absl::string_view text) {
  std::string result;
  for (unsigned char c : text) {
    if (c >= 0x20 && c < 0x7f) {
      result.push_back(static_cast<char>(c));
    } else {
      absl::StrAppend(&result, "\\x", absl::Hex(c, absl::kZeroPad2));
    }
  }
  return result;
}

// Returns `value` as JSON text, cut to a length that fits in a message.
std::string Brief(const Json& value) {
  constexpr size_t kMaxLength = 60;
  std::string text = value.dump();
  if (text.size() > kMaxLength) text = text.substr(0, kMaxLength) + "...";
  return text;
}

// Returns `value` as a non-negative int64, or InvalidArgument naming `what`.
absl::StatusOr<int64_t> NonNegativeInteger(const Json& value,
                                           absl::string_view what) {
  if (value.is_number_unsigned()) {
    const uint64_t u = value.get<uint64_t>();
    if (u > static_cast<uint64_t>(kInt64Max)) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " ", u, " is too large"));
    }
    return static_cast<int64_t>(u);
  }
  if (value.is_number_integer()) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " must be a non-negative integer, got ", value.get<int64_t>()));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      what, " must be a non-negative integer, got ", Brief(value)));
}

// Returns product(shape) * element_size, or InvalidArgument on overflow.
absl::StatusOr<int64_t> ByteSize(const std::vector<int64_t>& shape,
                                 SafetensorsDType dtype) {
  int64_t bytes = SafetensorsDTypeSize(dtype);
  for (int64_t extent : shape) {
    if (extent != 0 && bytes > kInt64Max / extent) {
      return absl::InvalidArgumentError(absl::StrCat(
          "shape [", absl::StrJoin(shape, ", "), "] is too large"));
    }
    bytes *= extent;
  }
  return bytes;
}

// Checks one tensor entry of the header; `data_size` is the length of the
// data section. Messages are relative to the tensor (the caller prefixes the
// file and the name).
absl::StatusOr<Entry> ParseEntry(const std::string& name, const Json& value,
                                 int64_t data_size) {
  if (!value.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("entry must be a JSON object, got ", JsonTypeName(value)));
  }
  Entry entry;
  entry.name = name;

  const auto dtype = value.find("dtype");
  if (dtype == value.end() || !dtype->is_string()) {
    return absl::InvalidArgumentError("\"dtype\" is missing or not a string");
  }
  DA_ASSIGN_OR_RETURN(entry.dtype, ParseDType(dtype->get<std::string>()));

  const auto shape = value.find("shape");
  if (shape == value.end() || !shape->is_array()) {
    return absl::InvalidArgumentError("\"shape\" is missing or not an array");
  }
  for (size_t d = 0; d < shape->size(); ++d) {
    DA_ASSIGN_OR_RETURN(
        int64_t extent,
        NonNegativeInteger((*shape)[d], absl::StrCat("shape[", d, "]")));
    entry.shape.push_back(extent);
  }

  const auto offsets = value.find("data_offsets");
  if (offsets == value.end() || !offsets->is_array() || offsets->size() != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"data_offsets\" must be an array [begin, end], got ",
                     offsets == value.end() ? "nothing" : Brief(*offsets)));
  }
  DA_ASSIGN_OR_RETURN(entry.begin,
                      NonNegativeInteger((*offsets)[0], "data_offsets[0]"));
  DA_ASSIGN_OR_RETURN(entry.end,
                      NonNegativeInteger((*offsets)[1], "data_offsets[1]"));
  if (entry.begin > entry.end) {
    return absl::InvalidArgumentError(
        absl::StrCat("data_offsets [", entry.begin, ", ", entry.end,
                     "] must satisfy begin <= end"));
  }
  DA_ASSIGN_OR_RETURN(int64_t expected, ByteSize(entry.shape, entry.dtype));
  if (entry.end - entry.begin != expected) {
    return absl::InvalidArgumentError(
        absl::StrCat("data_offsets [", entry.begin, ", ", entry.end, "] span ",
                     entry.end - entry.begin, " bytes but shape [",
                     absl::StrJoin(entry.shape, ", "), "] of ",
                     SafetensorsDTypeName(entry.dtype), " needs ", expected));
  }
  if (entry.end > data_size) {
    return absl::DataLossError(
        absl::StrCat("data_offsets [", entry.begin, ", ", entry.end,
                     "] reach beyond the data section of ", data_size,
                     " bytes (truncated file?)"));
  }
  return entry;
}

absl::Status ParseMetadata(const Json& value,
                           std::map<std::string, std::string>* metadata) {
  if (!value.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", kMetadataKey, "\" must be a JSON object, got ",
                     JsonTypeName(value)));
  }
  for (auto it = value.begin(); it != value.end(); ++it) {
    if (!it.value().is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", kMetadataKey, "\" entry '", it.key(),
                       "' must be a string, got ", JsonTypeName(it.value())));
    }
    (*metadata)[it.key()] = it.value().get<std::string>();
  }
  return absl::OkStatus();
}

// Checks that the tensors tile the data section: no overlap, no gap.
absl::Status CheckLayout(std::vector<const Entry*> entries, int64_t data_size) {
  std::sort(entries.begin(), entries.end(), [](const Entry* a, const Entry* b) {
    return std::make_pair(a->begin, a->end) < std::make_pair(b->begin, b->end);
  });
  int64_t covered = 0;
  const Entry* previous = nullptr;
  for (const Entry* entry : entries) {
    if (entry->begin < covered) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensors '", previous->name, "' (data_offsets [", previous->begin,
          ", ", previous->end, "]) and '", entry->name, "' (data_offsets [",
          entry->begin, ", ", entry->end, "]) overlap"));
    }
    if (entry->begin > covered) {
      return absl::InvalidArgumentError(
          absl::StrCat("bytes [", covered, ", ", entry->begin,
                       ") of the data section belong to no tensor"));
    }
    covered = entry->end;
    previous = entry;
  }
  if (covered != data_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("bytes [", covered, ", ", data_size,
                     ") of the data section belong to no tensor"));
  }
  return absl::OkStatus();
}

// Prefixes `status` with the file (and the tensor when `name` is not empty),
// keeping its code.
absl::Status Annotate(const absl::Status& status, const std::string& path,
                      absl::string_view name = {}) {
  if (status.ok()) return status;
  const std::string where =
      name.empty() ? absl::StrCat("'", path, "': ")
                   : absl::StrCat("'", path, "': tensor '", name, "': ");
  return absl::Status(status.code(),
                      Printable(absl::StrCat(where, status.message())));
}

// Returns an 8-byte-aligned buffer of at least `bytes` bytes, or null when
// memory is exhausted.
std::unique_ptr<uint64_t[]> AlignedBuffer(int64_t bytes) {
  return std::unique_ptr<uint64_t[]>(new (std::nothrow)
                                         uint64_t[(bytes + 7) / 8 + 1]);
}

}  // namespace

const char* SafetensorsDTypeName(SafetensorsDType dtype) {
  switch (dtype) {
    case SafetensorsDType::kF64:
      return "F64";
    case SafetensorsDType::kF32:
      return "F32";
    case SafetensorsDType::kF16:
      return "F16";
    case SafetensorsDType::kBF16:
      return "BF16";
    case SafetensorsDType::kI64:
      return "I64";
    case SafetensorsDType::kI32:
      return "I32";
    case SafetensorsDType::kBool:
      return "BOOL";
    case SafetensorsDType::kU8:
      return "U8";
  }
  return "unknown";
}

int64_t SafetensorsDTypeSize(SafetensorsDType dtype) {
  switch (dtype) {
    case SafetensorsDType::kF64:
    case SafetensorsDType::kI64:
      return 8;
    case SafetensorsDType::kF32:
    case SafetensorsDType::kI32:
      return 4;
    case SafetensorsDType::kF16:
    case SafetensorsDType::kBF16:
      return 2;
    case SafetensorsDType::kBool:
    case SafetensorsDType::kU8:
      return 1;
  }
  return 0;
}

SafetensorsDType ToSafetensorsDType(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return SafetensorsDType::kF32;
    case DType::kFloat16:
      return SafetensorsDType::kF16;
    case DType::kBFloat16:
      return SafetensorsDType::kBF16;
    case DType::kInt32:
      return SafetensorsDType::kI32;
    case DType::kBool:
      return SafetensorsDType::kBool;
  }
  return SafetensorsDType::kF32;
}

int64_t SafetensorsTensor::NumElements() const {
  int64_t count = 1;
  for (int64_t extent : shape) count *= extent;
  return count;
}

std::vector<double> SafetensorsTensor::ToDoubles() const {
  const int64_t count = NumElements();
  std::vector<double> values(count);
  for (int64_t i = 0; i < count; ++i) {
    switch (dtype) {
      case SafetensorsDType::kF64:
        values[i] = static_cast<const double*>(data)[i];
        break;
      case SafetensorsDType::kF32:
        values[i] = static_cast<const float*>(data)[i];
        break;
      case SafetensorsDType::kF16:
        values[i] = kernels::HalfToFloat(static_cast<const uint16_t*>(data)[i]);
        break;
      case SafetensorsDType::kBF16:
        values[i] =
            kernels::BFloat16ToFloat(static_cast<const uint16_t*>(data)[i]);
        break;
      case SafetensorsDType::kI64:
        values[i] = static_cast<double>(static_cast<const int64_t*>(data)[i]);
        break;
      case SafetensorsDType::kI32:
        values[i] = static_cast<const int32_t*>(data)[i];
        break;
      case SafetensorsDType::kBool:
      case SafetensorsDType::kU8:
        values[i] = static_cast<const uint8_t*>(data)[i];
        break;
    }
  }
  return values;
}

std::string SafetensorsTensor::ShapeString() const {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

absl::StatusOr<const SafetensorsTensor*> SafetensorsFile::Find(
    absl::string_view name) const {
  for (const SafetensorsTensor& tensor : tensors_) {
    if (tensor.name == name) return &tensor;
  }
  std::vector<std::string> names;
  for (const SafetensorsTensor& tensor : tensors_) names.push_back(tensor.name);
  return absl::NotFoundError(absl::StrCat(
      "'", path_, "' has no tensor '", name, "' (it has: ",
      names.empty() ? "none" : Printable(absl::StrJoin(names, ", ")), ")"));
}

absl::StatusOr<TensorView> SafetensorsFile::View(absl::string_view name) const {
  DA_ASSIGN_OR_RETURN(const SafetensorsTensor* tensor, Find(name));
  TensorView view;
  switch (tensor->dtype) {
    case SafetensorsDType::kF32:
      view.dtype = DType::kFloat32;
      break;
    case SafetensorsDType::kF16:
      view.dtype = DType::kFloat16;
      break;
    case SafetensorsDType::kBF16:
      view.dtype = DType::kBFloat16;
      break;
    case SafetensorsDType::kI32:
      view.dtype = DType::kInt32;
      break;
    case SafetensorsDType::kBool:
      view.dtype = DType::kBool;
      break;
    case SafetensorsDType::kF64:
    case SafetensorsDType::kI64:
    case SafetensorsDType::kU8:
      return absl::InvalidArgumentError(
          absl::StrCat("'", path_, "': tensor '", name, "' has dtype ",
                       SafetensorsDTypeName(tensor->dtype),
                       "; expected F32, F16, BF16, I32 or BOOL"));
  }
  if (tensor->shape.size() > static_cast<size_t>(TensorView::kMaxRank)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", path_, "': tensor '", name, "' has rank ", tensor->shape.size(),
        "; at most ", TensorView::kMaxRank, " is supported"));
  }
  view.data = const_cast<void*>(tensor->data);
  view.device = Device::Cpu();
  view.rank = static_cast<int>(tensor->shape.size());
  int64_t stride = 1;
  for (int d = view.rank - 1; d >= 0; --d) {
    view.shape[d] = tensor->shape[d];
    view.strides[d] = stride;
    stride *= tensor->shape[d];
  }
  return view;
}

absl::StatusOr<SafetensorsFile> ReadSafetensors(const std::string& path) {
  struct stat file_status;
  if (stat(path.c_str(), &file_status) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot open '", path, "'"));
  }
  if (!S_ISREG(file_status.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", path, "' is not a regular file"));
  }
  std::ifstream stream(path, std::ios::binary);
  if (!stream) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot open '", path, "'"));
  }
  const int64_t file_size = static_cast<int64_t>(file_status.st_size);
  if (file_size < 8) {
    return absl::DataLossError(
        absl::StrCat("'", path, "' is ", file_size,
                     " bytes long, shorter than the 8-byte header length"));
  }
  unsigned char length_bytes[8];
  stream.read(reinterpret_cast<char*>(length_bytes), 8);
  uint64_t header_length = 0;
  for (int i = 7; i >= 0; --i) {
    header_length = header_length << 8 | length_bytes[i];
  }
  if (header_length > static_cast<uint64_t>(file_size - 8)) {
    return absl::DataLossError(absl::StrCat(
        "'", path, "': header length ", header_length, " exceeds the ",
        file_size - 8, " bytes that follow it (truncated file?)"));
  }
  std::string header(header_length, '\0');
  stream.read(header.data(), static_cast<std::streamsize>(header_length));
  if (!stream) {
    return absl::DataLossError(absl::StrCat("'", path, "': cannot read the ",
                                            header_length, "-byte header"));
  }

  Json json;
  try {
    json = Json::parse(header);
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", path, "': header is not valid JSON: ", Printable(e.what())));
  }
  if (!json.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", path, "': header must be a JSON object, got ",
                     JsonTypeName(json)));
  }

  SafetensorsFile file;
  file.path_ = path;
  const int64_t data_size = file_size - 8 - static_cast<int64_t>(header_length);
  std::vector<Entry> entries;
  for (auto it = json.begin(); it != json.end(); ++it) {
    if (it.key() == kMetadataKey) {
      DA_RETURN_IF_ERROR(
          Annotate(ParseMetadata(it.value(), &file.metadata_), path));
      continue;
    }
    absl::StatusOr<Entry> entry = ParseEntry(it.key(), it.value(), data_size);
    if (!entry.ok()) return Annotate(entry.status(), path, it.key());
    entries.push_back(*std::move(entry));
  }
  std::vector<const Entry*> layout;
  for (const Entry& entry : entries) layout.push_back(&entry);
  DA_RETURN_IF_ERROR(Annotate(CheckLayout(std::move(layout), data_size), path));

  std::unique_ptr<uint64_t[]> data = AlignedBuffer(data_size);
  if (data == nullptr) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "'", path, "': cannot allocate ", data_size, " bytes for the data"));
  }
  char* base = reinterpret_cast<char*>(data.get());
  stream.read(base, static_cast<std::streamsize>(data_size));
  if (!stream) {
    return absl::DataLossError(absl::StrCat("'", path, "': cannot read the ",
                                            data_size, "-byte data section"));
  }
  file.buffers_.push_back(std::move(data));
  for (Entry& entry : entries) {
    SafetensorsTensor tensor;
    tensor.name = std::move(entry.name);
    tensor.dtype = entry.dtype;
    tensor.shape = std::move(entry.shape);
    tensor.byte_size = entry.end - entry.begin;
    tensor.data = base + entry.begin;
    if (entry.begin % SafetensorsDTypeSize(entry.dtype) != 0) {
      std::unique_ptr<uint64_t[]> copy = AlignedBuffer(tensor.byte_size);
      if (copy == nullptr) {
        return absl::ResourceExhaustedError(
            absl::StrCat("'", path, "': cannot allocate ", tensor.byte_size,
                         " bytes for tensor '", tensor.name, "'"));
      }
      std::memcpy(copy.get(), tensor.data, tensor.byte_size);
      tensor.data = copy.get();
      file.buffers_.push_back(std::move(copy));
    }
    file.tensors_.push_back(std::move(tensor));
  }
  std::sort(file.tensors_.begin(), file.tensors_.end(),
            [](const SafetensorsTensor& a, const SafetensorsTensor& b) {
              return a.name < b.name;
            });
  return file;
}

absl::Status WriteSafetensors(
    const std::string& path, absl::Span<const NamedTensor> tensors,
    const std::map<std::string, std::string>& metadata) {
  // Widest elements first, so that every tensor is aligned to its element
  // size inside the 8-byte-aligned data section.
  std::vector<const NamedTensor*> order;
  for (const NamedTensor& tensor : tensors) order.push_back(&tensor);
  std::stable_sort(order.begin(), order.end(),
                   [](const NamedTensor* a, const NamedTensor* b) {
                     return SafetensorsDTypeSize(a->dtype) >
                            SafetensorsDTypeSize(b->dtype);
                   });

  Json header = Json::object();
  if (!metadata.empty()) {
    Json entries = Json::object();
    for (const auto& [key, value] : metadata) entries[key] = value;
    header[kMetadataKey] = std::move(entries);
  }
  std::vector<int64_t> sizes;
  int64_t offset = 0;
  for (const NamedTensor* tensor : order) {
    const std::string where =
        absl::StrCat("'", path, "': tensor '", tensor->name, "': ");
    if (tensor->name.empty() || tensor->name == kMetadataKey) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", path, "': tensor name '", tensor->name, "' is not allowed"));
    }
    if (header.contains(tensor->name)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "the name appears twice"));
    }
    for (size_t d = 0; d < tensor->shape.size(); ++d) {
      if (tensor->shape[d] < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, "shape[", d, "] must be non-negative, got ",
                         tensor->shape[d]));
      }
    }
    absl::StatusOr<int64_t> bytes = ByteSize(tensor->shape, tensor->dtype);
    if (!bytes.ok()) return Annotate(bytes.status(), path, tensor->name);
    if (*bytes > 0 && tensor->data == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(where, "data is null"));
    }
    header[tensor->name] = {{"dtype", SafetensorsDTypeName(tensor->dtype)},
                            {"shape", tensor->shape},
                            {"data_offsets", {offset, offset + *bytes}}};
    sizes.push_back(*bytes);
    offset += *bytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", path, "': names and metadata must be valid UTF-8: ", e.what()));
  }
  text.resize((text.size() + 7) / 8 * 8, ' ');

  std::ofstream stream(path, std::ios::binary | std::ios::trunc);
  if (!stream) {
    return absl::ErrnoToStatus(
        errno, absl::StrCat("cannot open '", path, "' for writing"));
  }
  unsigned char length_bytes[8];
  uint64_t length = text.size();
  for (int i = 0; i < 8; ++i) {
    length_bytes[i] = static_cast<unsigned char>(length & 0xff);
    length >>= 8;
  }
  stream.write(reinterpret_cast<const char*>(length_bytes), 8);
  stream.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (size_t i = 0; i < order.size(); ++i) {
    if (sizes[i] > 0) {
      stream.write(static_cast<const char*>(order[i]->data),
                   static_cast<std::streamsize>(sizes[i]));
    }
  }
  stream.close();
  if (!stream) {
    return absl::UnavailableError(
        absl::StrCat("cannot write '", path, "' completely"));
  }
  return absl::OkStatus();
}

}  // namespace io
}  // namespace dilated
