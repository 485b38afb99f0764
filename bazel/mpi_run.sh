#!/bin/bash
# Runs a binary on N ranks of this machine with Open MPI's mpirun: the test
# runner of mpi_cc_test (bazel/mpi_test.bzl), usable by hand as well.
#
#   bazel/mpi_run.sh 4 bazel-bin/tests/distributed/mpi_communicator_test_bin
#
# The environment lets Open MPI 4.1 run as root in a container without a
# network and with fewer cores than ranks; a variable already set wins.
# DA_MPI_TIMEOUT (seconds, default 240) bounds the whole run. Exits nonzero
# if any rank does.
set -euo pipefail
if (($# < 2)); then
  echo "usage: $0 RANKS BINARY [ARGS...]" >&2
  exit 2
fi
ranks=$1
shift

# mpirun refuses root unless both are set.
export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1}
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
# Shared memory and loopback only: no network interfaces to probe.
export OMPI_MCA_btl=${OMPI_MCA_btl:-self,vader}
# Containers usually forbid the cross-memory-attach syscalls.
export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}
# More ranks than cores; ranks that wait give their core away.
export OMPI_MCA_rmaps_base_oversubscribe=${OMPI_MCA_rmaps_base_oversubscribe:-1}
export OMPI_MCA_mpi_yield_when_idle=${OMPI_MCA_mpi_yield_when_idle:-1}
# Everything runs on this host: no ssh/rsh launcher is looked for.
export OMPI_MCA_plm=${OMPI_MCA_plm:-isolated}
# A session directory and shared-memory files of this run's own: inside
# Bazel's sandboxes every mpirun can get the same PID, hence the same job id
# and, under a shared /tmp and /dev/shm, the same file names as another test
# running at the same time, whose ranks then read each other's messages.
# Short, under /tmp (Bazel's TEST_TMPDIR can exceed the length of a Unix
# socket path).
session=$(mktemp -d /tmp/da-mpi.XXXXXX)
trap 'rm -rf "${session}"' EXIT
export OMPI_MCA_orte_tmpdir_base=${OMPI_MCA_orte_tmpdir_base:-${session}}
export OMPI_MCA_btl_vader_backing_directory=${OMPI_MCA_btl_vader_backing_directory:-${session}}

timeout --kill-after=10 "${DA_MPI_TIMEOUT:-240}" \
  mpirun -np "${ranks}" --oversubscribe --bind-to none "$@"
