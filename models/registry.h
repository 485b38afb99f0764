// File: registry.h
//
// The factory of multihead attention modules, a second Registry instance next
// to the attention factory (attention/registry.h), with the reference's names:
//
//   "multihead_standard"  MultiheadDilatedAttention (separate q/k/v)
//   "multihead_improved"  FusedMultiheadDilatedAttention (fused qkv)
//   "multihead_auto"      FusedMultiheadDilatedAttention with the "auto" core
//                         unless config.attention_core names one (the
//                         reference's "auto" resolves to "improved")
//
// "multihead_standard" and "multihead_improved" use config.attention_core, or
// DefaultAttentionCoreName() when it is empty.
//
//   absl::StatusOr<std::unique_ptr<dilated::models::MultiheadAttention>> mha =
//       dilated::models::CreateMultiheadAttention("multihead_improved",
//                                                 config);
//
// Registration is static: the registering library has alwayslink = 1.

#ifndef MODELS_REGISTRY_H_
#define MODELS_REGISTRY_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "factory/registry.h"
#include "factory/status_macros.h"
#include "models/multihead_attention.h"

namespace dilated {
namespace models {

using MultiheadRegistry =
    factory::Registry<MultiheadAttention, const MultiheadConfig&>;

// Returns the process-wide registry of multihead modules (leaky singleton).
MultiheadRegistry& GlobalMultiheadRegistry();

// Returns a new module registered under `name`: InvalidArgument if `config`
// fails Validate(), NotFound listing the registered names for an unknown one.
absl::StatusOr<std::unique_ptr<MultiheadAttention>> CreateMultiheadAttention(
    absl::string_view name, const MultiheadConfig& config);

// Returns the registered names, sorted.
std::vector<std::string> RegisteredMultiheadNames();

// Registers `creator`, a callable (const MultiheadConfig&) ->
// absl::StatusOr<std::unique_ptr<MultiheadAttention>>, under `name`.
#define DA_REGISTER_MULTIHEAD(name, creator)                 \
  DA_REGISTER_AT_STARTUP(                                    \
      ::dilated::models::GlobalMultiheadRegistry().Register( \
          name, creator, __FILE__, __LINE__))

}  // namespace models
}  // namespace dilated

#endif  // MODELS_REGISTRY_H_
