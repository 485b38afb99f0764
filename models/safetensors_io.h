// File: safetensors_io.h
//
// The models' side of safetensors files (io/safetensors.h): a ParameterSource
// over a file, so that PyTorch checkpoints saved with
// safetensors.torch.save_file(module.state_dict(), path) load by name, and
// reading and writing activation tensors.
//
//   absl::StatusOr<dilated::io::SafetensorsFile> file =
//       dilated::io::ReadSafetensors("longnet.safetensors");
//   dilated::models::SafetensorsParameterSource source(&*file);
//   DA_RETURN_IF_ERROR(dilated::models::LoadStateDict(source, model.get()));
//
// or in one step: LoadSafetensorsStateDict("longnet.safetensors", model).

#ifndef MODELS_SAFETENSORS_IO_H_
#define MODELS_SAFETENSORS_IO_H_

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "io/safetensors.h"
#include "models/module.h"
#include "models/state_dict.h"
#include "models/tensor.h"

namespace dilated {
namespace models {

// The tensors of a safetensors file as parameters; elements of any dtype the
// file holds (F64, F32, F16, BF16) are converted to float32.
class SafetensorsParameterSource : public ParameterSource {
 public:
  // REQUIRES: `file` outlives this source.
  explicit SafetensorsParameterSource(const io::SafetensorsFile* file);

  std::vector<std::string> Names() const override;
  absl::StatusOr<std::vector<int64_t>> Shape(
      absl::string_view name) const override;
  absl::Status Read(absl::string_view name, float* dst) const override;

 private:
  // Returns the tensor `name`, or NotFound naming the file.
  absl::StatusOr<const io::SafetensorsTensor*> Find(
      absl::string_view name) const;

  const io::SafetensorsFile* file_;
  // Name -> tensor, so that lookups of absent names (checked for every
  // parameter) cost no message listing the file's contents.
  std::map<std::string, const io::SafetensorsTensor*, std::less<>> index_;
};

// Reads the file at `path` and loads `module` from it (LoadStateDict); errors
// of either step name the file.
absl::Status LoadSafetensorsStateDict(const std::string& path, Module* module,
                                      const LoadOptions& options = {});

// Writes every parameter of `module` as F32 under its state-dict name.
absl::Status SaveSafetensorsStateDict(
    const std::string& path, Module* module,
    const std::map<std::string, std::string>& metadata = {});

// Returns a copy of tensor `name` of `file` in its own dtype (F32, F16 or
// BF16); NotFound naming the file when it is absent, InvalidArgument for F64.
absl::StatusOr<Tensor> ReadTensor(const io::SafetensorsFile& file,
                                  absl::string_view name);

// Writes `tensors` (name -> tensor, each stored in its own dtype).
absl::Status WriteTensors(
    const std::string& path,
    const std::vector<std::pair<std::string, const Tensor*>>& tensors,
    const std::map<std::string, std::string>& metadata = {});

}  // namespace models
}  // namespace dilated

#endif  // MODELS_SAFETENSORS_IO_H_
