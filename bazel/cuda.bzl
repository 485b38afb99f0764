"""cuda_library: compiles .cu files with nvcc and wraps them in a cc_library.

The names mirror rules_cuda (which needs Bazel 7+) so that a later switch is a
search and replace. CUDA targets are only compatible with --config=cuda, so
`bazel build //...` on a machine without a GPU toolchain skips them.
"""

load("@local_cuda//:defs.bzl", "NVCC")

# sm_90a for H100/H200 (wgmma), plus compute_80 PTX that any newer GPU can JIT.
CUDA_GENCODE = [
    "-gencode=arch=compute_90a,code=sm_90a",
    "-gencode=arch=compute_80,code=compute_80",
]

def requires_cuda():
    """Returns target_compatible_with for targets that only build with --config=cuda."""
    return select({
        "//bazel:cuda_enabled": [],
        "//conditions:default": ["//bazel:cuda_never_available"],
    })

def if_cuda(if_true, if_false = []):
    """Selects if_true under --config=cuda, else if_false."""
    return select({
        "//bazel:cuda_enabled": if_true,
        "//conditions:default": if_false,
    })

def cuda_library(name, srcs, hdrs = [], deps = [], nvcc_flags = [], **kwargs):
    """A cc_library whose srcs are .cu files compiled by nvcc.

    Args:
      name: the cc_library name.
      srcs: .cu files, one object each.
      hdrs: headers the .cu files include (workspace-relative includes).
      deps: cc_library deps; their headers are not visible to nvcc, list them in hdrs.
      nvcc_flags: extra nvcc flags.
      **kwargs: passed to the cc_library (visibility, testonly, ...).
    """
    # Sources include headers relative to the root of the repository that
    # declares the target: "." in our workspace, external/<name> when the
    # library is used from another workspace.
    repository = native.repository_name().lstrip("@")
    root = "external/" + repository if repository else "."
    objects = []
    for src in srcs:
        obj = name + "_" + src.replace("/", "_").replace(".cu", ".o")
        genrule_name = obj.replace(".o", "_nvcc")
        native.genrule(
            name = genrule_name,
            srcs = [src] + hdrs,
            outs = [obj],
            # nvcc names its temporary files after the process id, which is
            # the same (2) in every sandboxed action: give each action its own
            # temporary directory so that parallel compilations cannot collide.
            # A kernel whose wgmma instructions ptxas serializes (its note
            # C7520: a wgmma under a branch it cannot prove uniform over the
            # warpgroup) runs 20-30% slower and still compiles; it fails the
            # build instead.
            cmd = "tmp=$$(mktemp -d) && TMPDIR=$$tmp " + " ".join([
                NVCC or "false",
                "-c",
                "-std=c++17",
                "-O3",
                "--expt-relaxed-constexpr",
                "-Xcompiler -fPIC",
                "-lineinfo",
                "-I" + root,
                "-I$(GENDIR)/" + root,
            ] + CUDA_GENCODE + nvcc_flags + [
                "$(location " + src + ")",
                "-o $@",
            ]) + " > $$tmp/nvcc.log 2>&1; status=$$?; cat $$tmp/nvcc.log >&2; " +
                  "if grep -q C7520 $$tmp/nvcc.log; then " +
                  "echo 'error: ptxas serialized wgmma instructions (C7520)' >&2; " +
                  "status=1; fi; rm -rf $$tmp; exit $$status",
            target_compatible_with = requires_cuda(),
            tags = ["cuda"],
        )
        objects.append(":" + obj)
    native.cc_library(
        name = name,
        srcs = objects,
        hdrs = hdrs,
        deps = deps + ["@local_cuda//:cudart"],
        alwayslink = 1,
        linkstatic = 1,
        target_compatible_with = requires_cuda(),
        **kwargs
    )
