// File: attention.h
//
// The Attention interface: dilated attention (docs/ARCHITECTURE.md section 1)
// over q, k, v of shape [batch, seq, heads, head_dim], or [total, heads,
// head_dim] for packed variable-length batches, forward and backward.
// Implementations are created by name through the factory (registry.h):
//
//   // segments {2048, 4096, 8192}, rates {1, 2, 4}
//   dilated::AttentionConfig config;
//   absl::StatusOr<std::unique_ptr<dilated::Attention>> attention =
//       dilated::CreateAttention("improved", config);
//   if (!attention.ok()) return attention.status();
//   dilated::ForwardOptions options;
//   options.is_causal = true;
//   DA_RETURN_IF_ERROR((*attention)->Forward(q, k, v, out, options));
//
// Every check on the tensors and the layout (rank, shapes, dtypes, devices,
// strides, cu_seqlens, key_padding_mask, heads >= groups) is made here, once,
// before any implementation runs, and reported as InvalidArgument naming the
// tensor or field and the value. A call an implementation cannot run (a
// layout its kernels lack) is Unimplemented, naming what is missing.

#ifndef ATTENTION_ATTENTION_H_
#define ATTENTION_ATTENTION_H_

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "attention/config.h"
#include "attention/options.h"
#include "attention/tensor.h"
#include "kernels/dilated_params.h"
#include "memory/allocator.h"

namespace dilated {

class Attention {
 public:
  virtual ~Attention() = default;
  Attention(const Attention&) = delete;
  Attention& operator=(const Attention&) = delete;

  // Returns the name this implementation is registered under.
  const std::string& name() const { return name_; }
  // Returns the configuration it was created with.
  const AttentionConfig& config() const { return config_; }

  // Writes the dilated attention of q, k, v into `out` (same shape, dtype and
  // device as q; every element is written, unselected and padded rows with
  // zero). When `lse` is not null it receives the float32 log-sum-exp of
  // every row, shape [batch, heads, seq] ([heads, total] when packed) with a
  // contiguous last axis (-inf where unselected or padded), which Backward
  // needs.
  absl::Status Forward(const TensorView& q, const TensorView& k,
                       const TensorView& v, const TensorView& out,
                       const ForwardOptions& options = {},
                       const TensorView* lse = nullptr);

  // Writes the gradients of a loss L with respect to q, k and v into grad_q,
  // grad_k and grad_v (same shape, dtype and device as q; fully overwritten),
  // given grad_out = dL/d(out) and the `out` and `lse` that Forward produced
  // for the same inputs and options.
  absl::Status Backward(const TensorView& q, const TensorView& k,
                        const TensorView& v, const TensorView& out,
                        const TensorView& lse, const TensorView& grad_out,
                        const TensorView& grad_q, const TensorView& grad_k,
                        const TensorView& grad_v,
                        const ForwardOptions& options = {});

 protected:
  Attention(std::string name, AttentionConfig config)
      : name_(std::move(name)), config_(std::move(config)) {}

  // Returns the workspace allocator of a call on `device` (never null; see
  // ForwardOptions::workspace_allocator), for implementations to call once
  // they know they can run it.
  absl::StatusOr<memory::Allocator*> WorkspaceAllocator(
      const Device& device, const ForwardOptions& options)
      ABSL_LOCKS_EXCLUDED(host_pool_mutex_);

 private:
  // Called on every call with the outcome of the front end's checks
  // (`params` is null when they failed) before anything runs; returns the
  // status the call goes on with. Implementations whose calls span
  // processes agree here, so that one process's failure or mismatch is an
  // error on every process instead of a hang. Returns `checked` by default.
  virtual absl::Status AgreeOnCall(const absl::Status& checked,
                                   const kernels::ForwardParams* params,
                                   bool backward);

  // Run with validated parameters on `device` (the tensors' device).
  virtual absl::Status DoForward(const kernels::ForwardParams& params,
                                 const Device& device,
                                 const ForwardOptions& options) = 0;
  virtual absl::Status DoBackward(const kernels::BackwardParams& params,
                                  const Device& device,
                                  const ForwardOptions& options) = 0;

  // Returns whether the implementation applies attention dropout (its
  // backends then refuse, per call, what they cannot run). Calls that train
  // with dropout are refused with Unimplemented otherwise.
  virtual bool AppliesDropout() const { return false; }

  absl::Status CheckOptions(const TensorView& q,
                            const ForwardOptions& options) const;

  std::string name_;
  AttentionConfig config_;
  absl::Mutex host_pool_mutex_;
  // Created on first use when config_.enable_memory_pool is set.
  std::unique_ptr<memory::Allocator> host_pool_
      ABSL_GUARDED_BY(host_pool_mutex_);
};

}  // namespace dilated

#endif  // ATTENTION_ATTENTION_H_
