#include "python/ops/callback_communicator.h"

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "base/device.h"
#include "distributed/communicator.h"

namespace dilated {
namespace torch_ops {
namespace {

using distributed::Buffers;
using distributed::ElementType;
using distributed::PendingExchange;
using distributed::ReduceOp;
using distributed::Transfer;

struct ExchangeId final : PendingExchange::State {
  explicit ExchangeId(int64_t id) : id(id) {}
  int64_t id;
};

class CallbackCommunicator final : public distributed::Communicator {
 public:
  CallbackCommunicator(int rank, int size, absl::Duration timeout,
                       const CommunicatorCallbacks& callbacks)
      : Communicator(rank, size, timeout), callbacks_(callbacks) {}

  std::string engine() const override { return "torch.distributed"; }

 private:
  static int DeviceType(const Buffers& buffers) {
    return buffers.device.type == dilated::DeviceType::kCuda ? 1 : 0;
  }

  // The status of a callback's return code; a failure disables the
  // communicator.
  absl::Status Check(int code, const char* operation) {
    if (code == 0) return absl::OkStatus();
    char message[1024] = {0};
    callbacks_.last_error(message, sizeof(message));
    const auto status_code = code > 0 && code <= 16
                                 ? static_cast<absl::StatusCode>(code)
                                 : absl::StatusCode::kInternal;
    failed_ = absl::Status(status_code, absl::StrCat("torch.distributed ",
                                                     operation, ": ", message));
    return failed_;
  }

  absl::Status Usable() const {
    if (failed_.ok()) return absl::OkStatus();
    return absl::FailedPreconditionError(
        absl::StrCat("the communicator failed earlier and cannot be used "
                     "again: ",
                     failed_.message()));
  }

  absl::Status DoAllGather(const void* send, void* recv, size_t bytes,
                           const Buffers& buffers) override {
    if (absl::Status s = Usable(); !s.ok()) return s;
    return Check(callbacks_.all_gather(send, recv, bytes, DeviceType(buffers),
                                       buffers.device.index, buffers.stream),
                 "all_gather");
  }
  absl::Status DoReduceScatter(const void* send, void* recv, int64_t count,
                               ElementType type, ReduceOp op,
                               const Buffers& buffers) override {
    if (absl::Status s = Usable(); !s.ok()) return s;
    return Check(
        callbacks_.reduce_scatter(send, recv, count, static_cast<int>(type),
                                  static_cast<int>(op), DeviceType(buffers),
                                  buffers.device.index, buffers.stream),
        "reduce_scatter");
  }
  absl::Status DoAllReduce(const void* send, void* recv, int64_t count,
                           ElementType type, ReduceOp op,
                           const Buffers& buffers) override {
    if (absl::Status s = Usable(); !s.ok()) return s;
    return Check(
        callbacks_.all_reduce(send, recv, count, static_cast<int>(type),
                              static_cast<int>(op), DeviceType(buffers),
                              buffers.device.index, buffers.stream),
        "all_reduce");
  }
  absl::Status DoBarrier() override {
    if (absl::Status s = Usable(); !s.ok()) return s;
    return Check(callbacks_.barrier(), "barrier");
  }
  absl::StatusOr<PendingExchange> DoStartExchange(
      absl::Span<const Transfer> transfers, const Buffers& buffers) override {
    if (absl::Status s = Usable(); !s.ok()) return s;
    std::vector<int32_t> kinds, peers;
    std::vector<void*> data;
    std::vector<uint64_t> bytes;
    for (const Transfer& transfer : transfers) {
      kinds.push_back(transfer.kind == Transfer::Kind::kSend ? 0 : 1);
      peers.push_back(transfer.peer);
      data.push_back(transfer.data);
      bytes.push_back(transfer.bytes);
    }
    int64_t id = 0;
    absl::Status started =
        Check(callbacks_.start_exchange(
                  static_cast<int64_t>(transfers.size()), kinds.data(),
                  peers.data(), data.data(), bytes.data(), DeviceType(buffers),
                  buffers.device.index, buffers.stream, &id),
              "start_exchange");
    if (!started.ok()) return started;
    return PendingExchange(std::make_unique<ExchangeId>(id));
  }
  absl::Status DoFinishExchange(PendingExchange pending) override {
    if (absl::Status s = Usable(); !s.ok()) return s;
    const auto* state = static_cast<const ExchangeId*>(pending.state());
    return Check(callbacks_.finish_exchange(state->id), "finish_exchange");
  }

  CommunicatorCallbacks callbacks_;
  absl::Status failed_;
};

}  // namespace

std::unique_ptr<distributed::Communicator> CreateCallbackCommunicator(
    int rank, int size, absl::Duration timeout,
    const CommunicatorCallbacks& callbacks) {
  return std::make_unique<CallbackCommunicator>(rank, size, timeout, callbacks);
}

}  // namespace torch_ops
}  // namespace dilated
