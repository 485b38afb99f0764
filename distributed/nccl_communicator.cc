#include "distributed/nccl_communicator.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "base/cuda_util.h"
#include "distributed/communicator.h"
#include "distributed/internal/launch_environment.h"
#include "distributed/internal/nccl_util.h"
#include "distributed/internal/pinned_staging.h"
#include "factory/status_macros.h"

namespace dilated {
namespace distributed {
namespace {

using internal::PinnedStaging;

ncclDataType_t NcclType(ElementType type) {
  switch (type) {
    case ElementType::kFloat32:
      return ncclFloat32;
    case ElementType::kFloat64:
      return ncclFloat64;
    case ElementType::kInt32:
      return ncclInt32;
    case ElementType::kInt64:
      return ncclInt64;
    case ElementType::kUInt8:
      return ncclUint8;
  }
  return ncclUint8;
}

ncclRedOp_t NcclOp(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return ncclSum;
    case ReduceOp::kMax:
      return ncclMax;
    case ReduceOp::kMin:
      return ncclMin;
  }
  return ncclSum;
}

absl::Status CheckOptions(const NcclOptions& options) {
  if (options.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "NcclOptions.timeout ", absl::FormatDuration(options.timeout),
        " is not positive"));
  }
  return CheckCudaDevice(options.device);
}

// Enqueues the NCCL calls of one operation on a stream, between device
// pointers.
using Enqueue =
    std::function<ncclResult_t(const char* send, char* recv, cudaStream_t)>;

class NcclCommunicator;

// An exchange in flight. Device buffers: `done` follows the transfers on
// the internal stream. Host buffers: `done` follows the copies back into
// `lease`, from which FinishExchange copies to the caller's receives.
struct NcclExchange : PendingExchange::State {
  struct CopyOut {
    void* host;
    const char* staged;
    size_t bytes;
  };

  ~NcclExchange() override {
    if (done == nullptr) return;
    // Unfinished host transfers may still write the staging memory.
    if (cudaEventQuery(done) != cudaSuccess) lease.Abandon();
    cudaEventDestroy(done);
  }

  cudaEvent_t done = nullptr;
  Buffers buffers;
  PinnedStaging::Lease lease;
  std::vector<CopyOut> copies;
};

class NcclCommunicator final : public Communicator {
 public:
  static absl::StatusOr<std::unique_ptr<Communicator>> Create(
      const NcclOptions& options, const ncclUniqueId& id, int rank, int size);

  ~NcclCommunicator() override {
    ScopedCudaDevice scope(device_);
    if (comm_ != nullptr) {
      // Finalising flushes the communicator's work; waited for with the
      // timeout, after which aborting ends it either way.
      bool finalized = false;
      if (broken_.ok()) {
        const ncclResult_t result = ncclCommFinalize(comm_);
        finalized = (result == ncclSuccess || result == ncclInProgress) &&
                    internal::WaitForNccl(comm_, absl::Now() + timeout(),
                                          "ncclCommFinalize")
                        .ok();
      }
      if (finalized) {
        ncclCommDestroy(comm_);
      } else {
        ncclCommAbort(comm_);
      }
    }
    if (barrier_ != nullptr) cudaFree(barrier_);
    if (ready_ != nullptr) cudaEventDestroy(ready_);
    if (done_ != nullptr) cudaEventDestroy(done_);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }

  std::string engine() const override { return "nccl"; }

 private:
  NcclCommunicator(int rank, int size, const NcclOptions& options)
      : Communicator(rank, size, options.timeout), device_(options.device) {}

  absl::Status Usable() const { return broken_; }

  absl::Status CheckDevice(const Buffers& buffers) const {
    if (buffers.device.type == DeviceType::kCuda &&
        buffers.device.index != device_) {
      return absl::InvalidArgumentError(
          absl::StrCat("NCCL communicator on cuda:", device_,
                       ": buffers.device is ", DeviceName(buffers.device)));
    }
    return absl::OkStatus();
  }

  // Ends the communicator's useful life after `op` failed with `cause`: a
  // timeout aborts the NCCL communicator (so that its kernels end) and is
  // reported as DeadlineExceeded naming the operation.
  absl::Status Fail(absl::string_view op, absl::Status cause) {
    if (absl::IsDeadlineExceeded(cause)) {
      cause = absl::DeadlineExceededError(absl::StrCat(
          "NCCL ", op, " did not complete within ",
          absl::FormatDuration(timeout()), " on rank ", rank(), " of ", size(),
          ": a rank did not make the matching call"));
    }
    if (comm_ != nullptr) {
      ncclCommAbort(comm_);
      comm_ = nullptr;
    }
    broken_ = absl::FailedPreconditionError(absl::StrCat(
        "NCCL communicator (rank ", rank(), " of ", size(),
        ") is unusable: an earlier ", op, " failed: ", cause.message()));
    return cause;
  }

  // Checks the result of an NCCL call of `op` and waits, with the timeout,
  // for the non-blocking communicator to finish enqueuing it.
  absl::Status Call(ncclResult_t result, absl::string_view op,
                    absl::string_view function) {
    absl::Status status = internal::NcclStatus(result, comm_, function);
    if (status.ok()) {
      status = internal::WaitForNccl(comm_, absl::Now() + timeout(), function);
    }
    if (!status.ok()) return Fail(op, std::move(status));
    return absl::OkStatus();
  }

  // Waits for `event` with the timeout.
  absl::Status Wait(cudaEvent_t event, absl::string_view op) {
    absl::Status status =
        internal::WaitForEvent(event, comm_, absl::Now() + timeout(), op);
    if (!status.ok()) return Fail(op, std::move(status));
    return absl::OkStatus();
  }

  // Runs `enqueue` on host buffers: `send` is copied through pinned memory
  // to device scratch on the internal stream, `recv` comes back the same
  // way, and the call waits for it with the timeout. In place when
  // send == recv (then send_bytes == recv_bytes).
  absl::Status RunOnHost(absl::string_view op, const void* send,
                         size_t send_bytes, void* recv, size_t recv_bytes,
                         const Enqueue& enqueue) {
    const bool in_place = send == recv;
    const size_t device_bytes = in_place ? send_bytes : send_bytes + recv_bytes;
    DA_ASSIGN_OR_RETURN(PinnedStaging::Lease lease,
                        staging_.Acquire(send_bytes + recv_bytes));
    std::memcpy(lease.data(), send, send_bytes);
    char* const staged_recv = lease.data() + send_bytes;
    void* scratch = nullptr;
    DA_RETURN_IF_ERROR(CudaStatus(
        cudaMallocAsync(&scratch, device_bytes, stream_), "cudaMallocAsync"));
    auto free_scratch =
        absl::MakeCleanup([&] { cudaFreeAsync(scratch, stream_); });
    char* const device_send = static_cast<char*>(scratch);
    char* const device_recv = in_place ? device_send : device_send + send_bytes;
    DA_RETURN_IF_ERROR(
        CudaStatus(cudaMemcpyAsync(device_send, lease.data(), send_bytes,
                                   cudaMemcpyHostToDevice, stream_),
                   "cudaMemcpyAsync to the device"));
    DA_RETURN_IF_ERROR(Call(enqueue(device_send, device_recv, stream_), op,
                            absl::StrCat("NCCL ", op)));
    DA_RETURN_IF_ERROR(
        CudaStatus(cudaMemcpyAsync(staged_recv, device_recv, recv_bytes,
                                   cudaMemcpyDeviceToHost, stream_),
                   "cudaMemcpyAsync to the host"));
    std::move(free_scratch).Invoke();
    DA_RETURN_IF_ERROR(
        CudaStatus(cudaEventRecord(done_, stream_), "cudaEventRecord"));
    const absl::Status waited = Wait(done_, op);
    if (!waited.ok()) {
      lease.Abandon();
      return waited;
    }
    std::memcpy(recv, staged_recv, recv_bytes);
    return absl::OkStatus();
  }

  // Runs `enqueue` on host or device buffers.
  absl::Status Run(absl::string_view op, const void* send, size_t send_bytes,
                   void* recv, size_t recv_bytes, const Buffers& buffers,
                   const Enqueue& enqueue) {
    DA_RETURN_IF_ERROR(Usable());
    DA_RETURN_IF_ERROR(CheckDevice(buffers));
    ScopedCudaDevice scope(device_);
    DA_RETURN_IF_ERROR(scope.status());
    if (buffers.device.type == DeviceType::kCpu) {
      return RunOnHost(op, send, send_bytes, recv, recv_bytes, enqueue);
    }
    return Call(
        enqueue(static_cast<const char*>(send), static_cast<char*>(recv),
                static_cast<cudaStream_t>(buffers.stream)),
        op, absl::StrCat("NCCL ", op));
  }

  absl::Status DoAllGather(const void* send, void* recv, size_t bytes,
                           const Buffers& buffers) override {
    return Run("all-gather", send, bytes, recv, bytes * size(), buffers,
               [&](const char* s, char* r, cudaStream_t stream) {
                 return ncclAllGather(s, r, bytes, ncclUint8, comm_, stream);
               });
  }

  absl::Status DoReduceScatter(const void* send, void* recv, int64_t count,
                               ElementType type, ReduceOp op,
                               const Buffers& buffers) override {
    const size_t block = static_cast<size_t>(count) * ElementSize(type);
    return Run("reduce-scatter", send, block * size(), recv, block, buffers,
               [&](const char* s, char* r, cudaStream_t stream) {
                 return ncclReduceScatter(s, r, static_cast<size_t>(count),
                                          NcclType(type), NcclOp(op), comm_,
                                          stream);
               });
  }

  absl::Status DoAllReduce(const void* send, void* recv, int64_t count,
                           ElementType type, ReduceOp op,
                           const Buffers& buffers) override {
    const size_t bytes = static_cast<size_t>(count) * ElementSize(type);
    return Run("all-reduce", send, bytes, recv, bytes, buffers,
               [&](const char* s, char* r, cudaStream_t stream) {
                 return ncclAllReduce(s, r, static_cast<size_t>(count),
                                      NcclType(type), NcclOp(op), comm_,
                                      stream);
               });
  }

  // An all-reduce of one int on the internal stream, waited for.
  absl::Status DoBarrier() override {
    DA_RETURN_IF_ERROR(Usable());
    ScopedCudaDevice scope(device_);
    DA_RETURN_IF_ERROR(scope.status());
    DA_RETURN_IF_ERROR(Call(ncclAllReduce(barrier_, barrier_, 1, ncclInt32,
                                          ncclSum, comm_, stream_),
                            "barrier", "ncclAllReduce"));
    DA_RETURN_IF_ERROR(
        CudaStatus(cudaEventRecord(done_, stream_), "cudaEventRecord"));
    return Wait(done_, "barrier");
  }

  // Enqueues the transfers as one NCCL group on the internal stream.
  absl::Status EnqueueGroup(absl::Span<const Transfer> transfers,
                            absl::Span<char* const> places) {
    ncclResult_t result = ncclGroupStart();
    for (size_t i = 0; i < transfers.size() && result == ncclSuccess; ++i) {
      const Transfer& t = transfers[i];
      result =
          t.kind == Transfer::Kind::kSend
              ? ncclSend(places[i], t.bytes, ncclUint8, t.peer, comm_, stream_)
              : ncclRecv(places[i], t.bytes, ncclUint8, t.peer, comm_, stream_);
    }
    const ncclResult_t ended = ncclGroupEnd();
    if (result == ncclSuccess) result = ended;
    return Call(result, "exchange", "ncclSend/ncclRecv group");
  }

  absl::StatusOr<PendingExchange> DoStartExchange(
      absl::Span<const Transfer> transfers, const Buffers& buffers) override {
    DA_RETURN_IF_ERROR(Usable());
    DA_RETURN_IF_ERROR(CheckDevice(buffers));
    ScopedCudaDevice scope(device_);
    DA_RETURN_IF_ERROR(scope.status());
    auto state = std::make_unique<NcclExchange>();
    state->buffers = buffers;
    DA_RETURN_IF_ERROR(CudaStatus(
        cudaEventCreateWithFlags(&state->done, cudaEventDisableTiming),
        "cudaEventCreateWithFlags"));
    std::vector<char*> places(transfers.size());
    if (buffers.device.type == DeviceType::kCuda) {
      // The transfers start after the caller's work so far, on the internal
      // stream, so that the caller's later work overlaps them.
      DA_RETURN_IF_ERROR(CudaStatus(
          cudaEventRecord(ready_, static_cast<cudaStream_t>(buffers.stream)),
          "cudaEventRecord"));
      DA_RETURN_IF_ERROR(CudaStatus(cudaStreamWaitEvent(stream_, ready_, 0),
                                    "cudaStreamWaitEvent"));
      for (size_t i = 0; i < transfers.size(); ++i) {
        places[i] = static_cast<char*>(transfers[i].data);
      }
      DA_RETURN_IF_ERROR(EnqueueGroup(transfers, places));
    } else {
      size_t total = 0;
      for (const Transfer& t : transfers) total += t.bytes;
      DA_ASSIGN_OR_RETURN(state->lease, staging_.Acquire(total));
      void* scratch = nullptr;
      DA_RETURN_IF_ERROR(CudaStatus(cudaMallocAsync(&scratch, total, stream_),
                                    "cudaMallocAsync"));
      auto free_scratch =
          absl::MakeCleanup([&] { cudaFreeAsync(scratch, stream_); });
      size_t offset = 0;
      for (size_t i = 0; i < transfers.size(); ++i) {
        const Transfer& t = transfers[i];
        char* const staged = state->lease.data() + offset;
        places[i] = static_cast<char*>(scratch) + offset;
        offset += t.bytes;
        if (t.kind == Transfer::Kind::kSend) {
          std::memcpy(staged, t.data, t.bytes);
          DA_RETURN_IF_ERROR(
              CudaStatus(cudaMemcpyAsync(places[i], staged, t.bytes,
                                         cudaMemcpyHostToDevice, stream_),
                         "cudaMemcpyAsync to the device"));
        } else {
          state->copies.push_back(
              NcclExchange::CopyOut{t.data, staged, t.bytes});
        }
      }
      DA_RETURN_IF_ERROR(EnqueueGroup(transfers, places));
      for (const NcclExchange::CopyOut& copy : state->copies) {
        const size_t at = copy.staged - state->lease.data();
        DA_RETURN_IF_ERROR(CudaStatus(
            cudaMemcpyAsync(const_cast<char*>(copy.staged),
                            static_cast<char*>(scratch) + at, copy.bytes,
                            cudaMemcpyDeviceToHost, stream_),
            "cudaMemcpyAsync to the host"));
      }
    }
    DA_RETURN_IF_ERROR(
        CudaStatus(cudaEventRecord(state->done, stream_), "cudaEventRecord"));
    return PendingExchange(std::move(state));
  }

  absl::Status DoFinishExchange(PendingExchange pending) override {
    auto* state = static_cast<NcclExchange*>(pending.state());
    DA_RETURN_IF_ERROR(Usable());
    ScopedCudaDevice scope(device_);
    DA_RETURN_IF_ERROR(scope.status());
    if (state->buffers.device.type == DeviceType::kCuda) {
      // Later work on the caller's stream waits for the transfers.
      return CudaStatus(
          cudaStreamWaitEvent(static_cast<cudaStream_t>(state->buffers.stream),
                              state->done, 0),
          "cudaStreamWaitEvent");
    }
    DA_RETURN_IF_ERROR(Wait(state->done, "exchange"));
    for (const NcclExchange::CopyOut& copy : state->copies) {
      std::memcpy(copy.host, copy.staged, copy.bytes);
    }
    return absl::OkStatus();
  }

  int device_;
  ncclComm_t comm_ = nullptr;
  // The internal stream: host-buffer operations, barriers and exchanges.
  cudaStream_t stream_ = nullptr;
  // Recorded on the caller's stream before an exchange starts.
  cudaEvent_t ready_ = nullptr;
  // Recorded after host-buffer operations and barriers, then waited for.
  cudaEvent_t done_ = nullptr;
  int* barrier_ = nullptr;
  PinnedStaging staging_;
  absl::Status broken_;
};

absl::StatusOr<std::unique_ptr<Communicator>> NcclCommunicator::Create(
    const NcclOptions& options, const ncclUniqueId& id, int rank, int size) {
  ScopedCudaDevice scope(options.device);
  DA_RETURN_IF_ERROR(scope.status());
  std::unique_ptr<NcclCommunicator> comm(
      new NcclCommunicator(rank, size, options));
  DA_RETURN_IF_ERROR(CudaStatus(
      cudaStreamCreateWithFlags(&comm->stream_, cudaStreamNonBlocking),
      "cudaStreamCreateWithFlags"));
  DA_RETURN_IF_ERROR(CudaStatus(
      cudaEventCreateWithFlags(&comm->ready_, cudaEventDisableTiming),
      "cudaEventCreateWithFlags"));
  DA_RETURN_IF_ERROR(
      CudaStatus(cudaEventCreateWithFlags(&comm->done_, cudaEventDisableTiming),
                 "cudaEventCreateWithFlags"));
  DA_RETURN_IF_ERROR(CudaStatus(
      cudaMalloc(reinterpret_cast<void**>(&comm->barrier_), sizeof(int)),
      "cudaMalloc of the barrier's int"));
  DA_RETURN_IF_ERROR(
      CudaStatus(cudaMemset(comm->barrier_, 0, sizeof(int)), "cudaMemset"));

  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  const ncclResult_t result =
      ncclCommInitRankConfig(&comm->comm_, size, id, rank, &config);
  absl::Status status =
      internal::NcclStatus(result, comm->comm_, "ncclCommInitRankConfig");
  if (status.ok()) {
    status = internal::WaitForNccl(comm->comm_, absl::Now() + options.timeout,
                                   "ncclCommInitRankConfig");
  }
  if (!status.ok()) {
    if (comm->comm_ != nullptr) {
      ncclCommAbort(comm->comm_);
      comm->comm_ = nullptr;
    }
    if (absl::IsDeadlineExceeded(status)) {
      return absl::DeadlineExceededError(absl::StrCat(
          "NCCL communicator initialisation did not complete within ",
          absl::FormatDuration(options.timeout), " on rank ", rank, " of ",
          size, ": a rank did not create its communicator"));
    }
    return status;
  }
  return std::unique_ptr<Communicator>(std::move(comm));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(
    const NcclOptions& options, Communicator& bootstrap) {
  DA_RETURN_IF_ERROR(CheckOptions(options));
  ncclUniqueId id;
  std::memset(&id, 0, sizeof(id));
  if (bootstrap.rank() == 0) {
    DA_RETURN_IF_ERROR(
        internal::NcclStatus(ncclGetUniqueId(&id), nullptr, "ncclGetUniqueId"));
  }
  // Every rank receives every rank's bytes; rank 0's block is the id.
  std::vector<char> ids(sizeof(id) * bootstrap.size());
  DA_RETURN_IF_ERROR(bootstrap.AllGather(&id, ids.data(), sizeof(id),
                                         Buffers{Device::Cpu(), nullptr}));
  std::memcpy(&id, ids.data(), sizeof(id));
  return NcclCommunicator::Create(options, id, bootstrap.rank(),
                                  bootstrap.size());
}

absl::StatusOr<std::unique_ptr<Communicator>>
CreateNcclCommunicatorFromEnvironment(const NcclOptions& options) {
  DA_RETURN_IF_ERROR(CheckOptions(options));
  DA_ASSIGN_OR_RETURN(const internal::LaunchRank launch,
                      internal::RankFromEnvironment());
  const char* path = std::getenv("DA_NCCL_ID_FILE");
  if (path == nullptr || path[0] == '\0') {
    return absl::FailedPreconditionError(
        "DA_NCCL_ID_FILE is not set: name a file, new for this job, on a "
        "file system every rank sees");
  }
  ncclUniqueId id;
  if (launch.rank == 0) {
    DA_RETURN_IF_ERROR(
        internal::NcclStatus(ncclGetUniqueId(&id), nullptr, "ncclGetUniqueId"));
    DA_RETURN_IF_ERROR(internal::PublishFile(
        path,
        absl::string_view(reinterpret_cast<const char*>(&id), sizeof(id))));
  } else {
    DA_ASSIGN_OR_RETURN(
        const std::string bytes,
        internal::AwaitFile(path, sizeof(id), absl::Now() + options.timeout));
    std::memcpy(&id, bytes.data(), sizeof(id));
  }
  return NcclCommunicator::Create(options, id, launch.rank, launch.size);
}

}  // namespace distributed
}  // namespace dilated
