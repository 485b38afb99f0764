#include "attention/config.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "kernels/dilated_params.h"

namespace dilated {
namespace {

absl::Status ValidatePositive(const char* name,
                              const std::vector<int64_t>& values) {
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i] <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, "[", i, "] must be positive, got ", values[i]));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status AttentionConfig::Validate() const {
  if (segment_lengths.empty()) {
    return absl::InvalidArgumentError("segment_lengths cannot be empty");
  }
  if (dilation_rates.empty()) {
    return absl::InvalidArgumentError("dilation_rates cannot be empty");
  }
  if (segment_lengths.size() != dilation_rates.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "segment_lengths and dilation_rates must have the same length: ",
        segment_lengths.size(), " != ", dilation_rates.size()));
  }
  if (segment_lengths.size() > static_cast<size_t>(kernels::kMaxGroups)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "segment_lengths has ", segment_lengths.size(), " entries; at most ",
        kernels::kMaxGroups, " groups are supported"));
  }
  if (absl::Status s = ValidatePositive("segment_lengths", segment_lengths);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = ValidatePositive("dilation_rates", dilation_rates);
      !s.ok()) {
    return s;
  }
  if (!(dropout >= 0.0 && dropout < 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("dropout must be in [0, 1), got ", dropout));
  }
  if (softmax_scale.has_value() && !std::isfinite(*softmax_scale)) {
    return absl::InvalidArgumentError(
        absl::StrCat("softmax_scale must be finite, got ", *softmax_scale));
  }
  return absl::OkStatus();
}

}  // namespace dilated
