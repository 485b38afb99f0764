// File: registry.h
//
// The factory of attention implementations: every implementation registers a
// creator under its name ("standard", "improved", "auto", ...) and users create
// one by name.
//
//   absl::StatusOr<std::unique_ptr<dilated::Attention>> attention =
//       dilated::CreateAttention("standard", config);
//
// Registration is static: a library that registers must be linked with
// alwayslink = 1 (Bazel) or its registration is dropped by the linker.

#ifndef ATTENTION_REGISTRY_H_
#define ATTENTION_REGISTRY_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "attention/attention.h"
#include "attention/config.h"
#include "factory/registry.h"
#include "factory/status_macros.h"

namespace dilated {

using AttentionRegistry = factory::Registry<Attention, const AttentionConfig&>;

// Returns the process-wide registry (leaky singleton).
AttentionRegistry& GlobalAttentionRegistry();

// Returns a new implementation registered under `name`, InvalidArgument if
// `config` fails Validate(), or NotFound listing the registered names.
absl::StatusOr<std::unique_ptr<Attention>> CreateAttention(
    absl::string_view name, const AttentionConfig& config);

// Returns the registered names, sorted.
std::vector<std::string> RegisteredAttentionNames();

// Returns the registered names that compute the dilated attention of
// docs/ARCHITECTURE.md section 1, sorted: all but "block_sparse" and
// "longnet", which compute other functions of q, k and v.
std::vector<std::string> DilatedAttentionNames();

// Registers `creator`, a callable (const AttentionConfig&) ->
// absl::StatusOr<std::unique_ptr<Attention>>, under `name`.
#define DA_REGISTER_ATTENTION(name, creator)                            \
  DA_REGISTER_AT_STARTUP(::dilated::GlobalAttentionRegistry().Register( \
      name, creator, __FILE__, __LINE__))

}  // namespace dilated

#endif  // ATTENTION_REGISTRY_H_
