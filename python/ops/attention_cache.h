// The Attention objects behind the PyTorch ops, one per configuration,
// created on first use and kept for the life of the process, so that a call
// costs no factory look-up or set-up. The cache grows by one small entry per
// distinct configuration (implementation, lengths, rates, scale, dropout,
// block-sparse layout) a process uses, including ones that failed to create;
// a custom block layout's entry holds a copy of the layout.

#ifndef DILATED_PYTHON_OPS_ATTENTION_CACHE_H_
#define DILATED_PYTHON_OPS_ATTENTION_CACHE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "attention/attention.h"
#include "attention/block_layout.h"

namespace dilated {
namespace torch_ops {

struct AttentionKey {
  std::string implementation;
  std::vector<int64_t> segment_lengths;
  std::vector<int64_t> dilation_rates;
  std::optional<double> softmax_scale;
  // AttentionConfig::dropout: the probability of the calls that train.
  double dropout = 0.0;
  // A distributed::Communicator's address (mpi_communicator_ops.cc), 0 for
  // none: one process.
  int64_t communicator = 0;
  // The layout of "block_sparse" (other implementations ignore it).
  BlockSparseConfig block_sparse;
};

// Runs `call` with the Attention of `key`, creating it on first use
// (CreateAttention's error, e.g. an unknown name or invalid lengths, is
// returned then and the next call tries again). Calls on one Attention are
// serialised; different configurations run concurrently.
absl::Status WithAttention(const AttentionKey& key,
                           const std::function<absl::Status(Attention&)>& call);

}  // namespace torch_ops
}  // namespace dilated

#endif  // DILATED_PYTHON_OPS_ATTENTION_CACHE_H_
