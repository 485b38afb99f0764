// File: kernel_attention.h
//
// KernelAttention: an Attention that runs the backend registered for its name
// and the tensors' device (backend_registry.h). "standard" and "improved" are
// KernelAttentions with a fixed backend name; "auto" takes, per call, the
// highest-priority backend registered for the device that can run the call
// (and the next one when a backend refuses as it runs).

#ifndef ATTENTION_KERNEL_ATTENTION_H_
#define ATTENTION_KERNEL_ATTENTION_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "attention/attention.h"
#include "attention/backend_registry.h"

namespace dilated {

class KernelAttention : public Attention {
 public:
  // Runs the backend registered as `backend_name`; when it is nullopt, the
  // best backend for each call's device.
  KernelAttention(std::string name, AttentionConfig config,
                  std::optional<std::string> backend_name);

 private:
  // Its backends apply dropout (docs/DROPOUT.md); one that cannot must refuse
  // calls with params.dropout.enabled in `supports`.
  bool AppliesDropout() const override { return true; }

  absl::Status DoForward(const kernels::ForwardParams& params,
                         const Device& device,
                         const ForwardOptions& options) override;
  absl::Status DoBackward(const kernels::BackwardParams& params,
                          const Device& device,
                          const ForwardOptions& options) override;

  // Returns the backends that can run a call, best first: the named one
  // (or its refusal), else (auto) every registered one that says it can.
  absl::StatusOr<std::vector<Backend>> Candidates(
      const kernels::ForwardParams& params,
      const kernels::BackwardParams* backward, const Device& device) const;

  // Runs the first candidate; "auto" moves on to the next one when a backend
  // refuses with Unimplemented as it runs (before it writes anything).
  template <typename Params, typename Run>
  absl::Status RunFirstThatCan(const kernels::ForwardParams& forward,
                               const Params* backward, const Device& device,
                               const ForwardOptions& options, Run run);

  absl::Status NoBackendCanRun(const Device& device,
                               const std::vector<std::string>& refusals) const;

  std::optional<std::string> backend_name_;
};

// Returns a creator for the factory that makes a KernelAttention running the
// backend `name`.
std::unique_ptr<Attention> MakeKernelAttention(const std::string& name,
                                               const AttentionConfig& config);

}  // namespace dilated

#endif  // ATTENTION_KERNEL_ATTENTION_H_
