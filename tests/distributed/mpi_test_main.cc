// The main of gtest binaries that run under mpirun (mpi_cc_test): every
// rank runs every test; rank 0 prints as usual, the other ranks print only
// their failures, marked with their rank (DA_MPI_TEST_VERBOSE=1 lets every
// rank print everything). The exit code is nonzero on every rank if any
// rank failed, so that mpirun and the test runner see the failure whichever
// rank had it. MPI is initialised and finalised here.

#include <mpi.h>

#include <cstdio>
#include <cstdlib>

#include "gtest/gtest.h"

namespace {

// Prints failed assertions and tests of a rank other than 0.
class RankFailurePrinter : public testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}

  void OnTestPartResult(const testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: Failure\n%s\n", rank_,
                 result.file_name() ? result.file_name() : "(unknown file)",
                 result.line_number(), result.message());
  }

  void OnTestEnd(const testing::TestInfo& info) override {
    if (!info.result()->Failed()) return;
    std::fprintf(stderr, "[rank %d] [  FAILED  ] %s.%s\n", rank_,
                 info.test_suite_name(), info.name());
  }

 private:
  int rank_;
};

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  int rank = 0;
  int size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (rank != 0) {
    // Bazel's marker of a premature exit is rank 0's to create and remove;
    // several ranks racing on it report errors.
    unsetenv("TEST_PREMATURE_EXIT_FILE");
  }
  testing::InitGoogleTest(&argc, argv);

  const char* verbose = std::getenv("DA_MPI_TEST_VERBOSE");
  if (rank != 0 && (verbose == nullptr || verbose[0] != '1')) {
    testing::TestEventListeners& listeners =
        testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailurePrinter(rank));
    // One XML report (rank 0's) for the test runner.
    testing::GTEST_FLAG(output) = "";
  }

  const int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  int any_failed = 0;
  MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (rank == 0 && any_failed && !failed) {
    std::fprintf(stderr,
                 "mpi_test_main: a rank other than 0 failed (see the lines "
                 "marked [rank N])\n");
  }
  MPI_Finalize();
  return any_failed ? 1 : 0;
}
