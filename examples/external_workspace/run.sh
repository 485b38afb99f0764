#!/usr/bin/env bash
# Builds and runs //:main of this workspace, which uses @dilated_attention as
# another project would (see WORKSPACE and .bazelrc here), after checking that
# a repository this workspace declares itself is kept.
# Usage: examples/external_workspace/run.sh [bazel build flags, e.g. --config=cuda]
#
# ../../bazelw installs the Debian packages the library needs; it runs bazel in
# its own directory, so bazel itself is called here, in this workspace.
set -euo pipefail
cd "$(dirname "$0")"
../../bazelw --install-only
bazel build "$@" //:own_dlpack_is_kept
bazel run "$@" //:main
