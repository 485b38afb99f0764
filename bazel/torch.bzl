"""requires_torch(): target_compatible_with for targets that need PyTorch.

They build where @local_torch found an installed torch (bazel/torch_configure.bzl)
and are skipped by wildcards such as //... elsewhere.
"""

load("@local_torch//:defs.bzl", "TORCH_FOUND")

# The oldest stable ABI the op library uses: torch 2.10 (version.h's encoding,
# major << 56 | minor << 48), so that one binary serves 2.10 and later.
TORCH_TARGET_VERSION_COPT = "-DTORCH_TARGET_VERSION=0x020a000000000000"

def requires_torch():
    return [] if TORCH_FOUND else ["//bazel:torch_never_available"]
