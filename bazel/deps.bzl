"""dilated_attention_deps(): every repository the library needs, for any workspace.

Our own WORKSPACE and a workspace that uses the library both call it:

    local_repository(name = "dilated_attention", path = "...")
    load("@dilated_attention//bazel:deps.bzl", "dilated_attention_deps")
    dilated_attention_deps()

Everything is local: Debian packages (installed by ./bazelw), stubs kept in
third_party/, and the CUDA toolkit found by cuda_configure. Nothing is
downloaded. A repository the caller has already declared under the same name
is left as the caller declared it.

Labels below are built with Label() at load time, so they name this
repository (@dilated_attention) when loaded from another workspace and the main
repository when loaded from ours.
"""

load("//bazel:cuda_configure.bzl", "cuda_configure")
load("//bazel:torch_configure.bzl", "torch_configure")

# A file in third_party/: its directory holds the stub repositories.
_THIRD_PARTY_MARKER = Label("//third_party:BUILD.bazel")

def _stub_repository_impl(repository_ctx):
    # local_repository paths are relative to the *main* workspace, so a stub
    # kept in our third_party/ cannot be named that way from another
    # workspace; find it through a label instead and link its top-level
    # entries (WORKSPACE, BUILD, subdirectories) into this repository.
    source = repository_ctx.path(repository_ctx.attr.marker).dirname.get_child(
        repository_ctx.attr.directory,
    )
    if not source.exists:
        fail("stub directory %s is missing" % source)
    for child in source.readdir():
        repository_ctx.symlink(child, child.basename)

_stub_repository = repository_rule(
    implementation = _stub_repository_impl,
    attrs = {
        "directory": attr.string(
            mandatory = True,
            doc = "The stub's directory under third_party/.",
        ),
        "marker": attr.label(
            default = _THIRD_PARTY_MARKER,
            allow_single_file = True,
            doc = "A file directly in third_party/.",
        ),
    },
    local = True,
)

def _build_file(name):
    """The label string of third_party/<name>, valid from any workspace."""
    return str(Label("//third_party:" + name))

def _maybe(rule, name, **kwargs):
    """Declares the repository unless the caller already has one of that name."""
    if not native.existing_rule(name):
        rule(name = name, **kwargs)

# Debian's multiarch directory (libopenmpi-dev lives under it).
_DEBIAN_LIB = "/usr/lib/x86_64-linux-gnu"

def dilated_attention_deps():
    """Declares the repositories that @dilated_attention's targets depend on."""

    # What Bazel 4.2.3 needs to run offline: stubs of rules_cc (Debian's is too
    # new) and remote_coverage_tools (asked for even without coverage), and
    # Debian's rules_java (bazel-rules-java).
    _maybe(_stub_repository, "rules_cc", directory = "rules_cc")
    _maybe(
        _stub_repository,
        "remote_coverage_tools",
        directory = "remote_coverage_tools",
    )
    _maybe(
        native.local_repository,
        "rules_java",
        path = "/usr/share/bazel/rules/java",
    )

    # Libraries from Debian packages: headers under /usr/include, shared or
    # static libraries on the default linker path.
    _maybe(
        native.new_local_repository,
        "com_google_absl",
        build_file = _build_file("absl.BUILD"),
        path = "/usr/include",
    )
    _maybe(
        native.new_local_repository,
        "com_google_googletest",
        build_file = _build_file("gtest.BUILD"),
        path = "/usr/include",
    )
    _maybe(
        native.new_local_repository,
        "com_google_benchmark",
        build_file = _build_file("benchmark.BUILD"),
        path = "/usr/include",
    )
    _maybe(
        native.new_local_repository,
        "eigen",
        build_file = _build_file("eigen.BUILD"),
        path = "/usr/include/eigen3",
    )
    _maybe(
        native.new_local_repository,
        "dlpack",
        build_file = _build_file("dlpack.BUILD"),
        path = "/usr/include",
    )
    _maybe(
        native.new_local_repository,
        "nlohmann_json",
        build_file = _build_file("nlohmann_json.BUILD"),
        path = "/usr/include",
    )

    _maybe(
        native.new_local_repository,
        "libpng",
        build_file = _build_file("libpng.BUILD"),
        path = "/usr/include",
    )

    # Open MPI from libopenmpi-dev (headers and libmpi under the architecture's
    # openmpi/ folder); mpirun comes from openmpi-bin.
    _maybe(
        native.new_local_repository,
        "openmpi",
        build_file = _build_file("openmpi.BUILD"),
        path = _DEBIAN_LIB + "/openmpi",
    )

    # The CUDA toolkit, found through CUDA_PATH or nvcc on PATH (see the rule).
    # Always declared: CPU-only builds load it too, and it is empty without a
    # toolkit.
    _maybe(cuda_configure, "local_cuda")

    # LibTorch's stable-ABI headers from the installed torch, for the PyTorch
    # package's op library; empty without torch.
    _maybe(torch_configure, "local_torch")
