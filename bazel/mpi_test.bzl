"""mpi_cc_test: a C++ test that runs on several MPI ranks under mpirun.

    mpi_cc_test(
        name = "mpi_communicator_test",
        srcs = ["mpi_communicator_test.cc"],
        deps = [":mpi_test_main", "//distributed:mpi_communicator"],
        ranks = [2, 4],
    )

builds the binary `<name>_bin` once and, for each entry N of `ranks`, an
sh_test `<name>_<N>ranks` that runs it with bazel/mpi_run.sh (mpirun -np N
with the environment Open MPI needs as root in a container); a test_suite
`<name>` holds them all. The test fails if any rank exits nonzero. The
binary's main must initialise and finalise MPI
(//tests/distributed:mpi_test_main does, for gtest).
"""

def mpi_cc_test(
        name,
        srcs,
        deps = [],
        ranks = [2, 4],
        size = "medium",
        timeout = None,
        tags = [],
        **kwargs):
    """Declares the binary, one sh_test per rank count and a test_suite.

    Args:
      name: the test_suite's name; the tests are <name>_<N>ranks.
      srcs: the binary's sources.
      deps: the binary's deps (include the MPI-aware main).
      ranks: rank counts to run with.
      size: the sh_tests' size (Bazel's default timeout follows from it).
      timeout: the sh_tests' timeout, if not the size's default.
      tags: tags of the binary and the tests ("mpi" is added to the tests).
      **kwargs: passed to the cc_binary (copts, local_defines, ...).
    """
    binary = name + "_bin"
    native.cc_binary(
        name = binary,
        srcs = srcs,
        deps = deps,
        testonly = True,
        tags = tags,
        **kwargs
    )
    tests = []
    for n in ranks:
        test = "%s_%dranks" % (name, n)
        native.sh_test(
            name = test,
            srcs = ["//bazel:mpi_run.sh"],
            args = [str(n), "$(location :%s)" % binary],
            data = [":" + binary],
            size = size,
            timeout = timeout,
            tags = tags + ["mpi"],
        )
        tests.append(":" + test)
    native.test_suite(
        name = name,
        tests = tests,
        tags = tags,
    )
