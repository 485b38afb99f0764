// CreateSingleProcessCommunicator: the engine of one rank. Every collective
// is a copy from `send` to `recv` (the whole input is this rank's share), and
// an exchange never reaches the engine: Communicator refuses any transfer
// because no peer exists.

#include <cstring>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "distributed/communicator.h"
#include "distributed/internal/device_copy.h"

namespace dilated {
namespace distributed {
namespace {

class SingleProcessCommunicator final : public Communicator {
 public:
  SingleProcessCommunicator()
      : Communicator(/*rank=*/0, /*size=*/1, absl::InfiniteDuration()) {}

  std::string engine() const override { return "single"; }

 private:
  // Host copies finish here; device copies are ordered on buffers.stream.
  static absl::Status Copy(const void* send, void* recv, size_t bytes,
                           const Buffers& buffers) {
    if (send == recv) return absl::OkStatus();
    if (buffers.device.type == DeviceType::kCpu) {
      std::memcpy(recv, send, bytes);
      return absl::OkStatus();
    }
    return internal::CopyAsync(recv, send, bytes, buffers.device,
                               buffers.stream);
  }

  absl::Status DoAllGather(const void* send, void* recv, size_t bytes,
                           const Buffers& buffers) override {
    return Copy(send, recv, bytes, buffers);
  }
  absl::Status DoReduceScatter(const void* send, void* recv, int64_t count,
                               ElementType type, ReduceOp,
                               const Buffers& buffers) override {
    return Copy(send, recv, count * ElementSize(type), buffers);
  }
  absl::Status DoAllReduce(const void* send, void* recv, int64_t count,
                           ElementType type, ReduceOp,
                           const Buffers& buffers) override {
    return Copy(send, recv, count * ElementSize(type), buffers);
  }
  absl::Status DoBarrier() override { return absl::OkStatus(); }
  absl::StatusOr<PendingExchange> DoStartExchange(absl::Span<const Transfer>,
                                                  const Buffers&) override {
    return absl::InternalError(
        "SingleProcessCommunicator: an exchange reached the engine of one "
        "rank although Communicator refuses every peer");
  }
  absl::Status DoFinishExchange(PendingExchange) override {
    return absl::InternalError(
        "SingleProcessCommunicator: no exchange can be pending");
  }
};

}  // namespace

std::unique_ptr<Communicator> CreateSingleProcessCommunicator() {
  return std::make_unique<SingleProcessCommunicator>();
}

}  // namespace distributed
}  // namespace dilated
