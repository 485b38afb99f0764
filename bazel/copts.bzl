"""Compiler options shared by every C++ target of the project."""

DA_DEFAULT_COPTS = [
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wno-sign-compare",
    "-Wno-unused-parameter",
]

# x86-64-v3 (AVX2 + FMA): one binary for every recent x86 machine.
DA_KERNEL_COPTS = DA_DEFAULT_COPTS + [
    "-march=x86-64-v3",
    "-O3",
]

DA_TEST_COPTS = [
    "-Wall",
    "-Wno-sign-compare",
]
