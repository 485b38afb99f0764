# find_package(DilatedAttention) for the library installed by
# `./bazelw run -c opt //:install -- PREFIX`. Gives the imported target
# DilatedAttention::dilated_attention: the shared library, the include root
# PREFIX/include/dilated_attention, C++17, and what the public headers need
# (Abseil and DLPack as Debian installs them: libabsl-dev, libdlpack-dev).
#
#   find_package(DilatedAttention REQUIRED)
#   target_link_libraries(my_program PRIVATE DilatedAttention::dilated_attention)

include(CMakeFindDependencyMacro)
find_dependency(absl CONFIG)
find_dependency(dlpack CONFIG)

# The prefix, three levels above PREFIX/lib/cmake/DilatedAttention, so that an
# installed tree can be moved.
get_filename_component(_dilated_attention_prefix
                       "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)

if(NOT TARGET DilatedAttention::dilated_attention)
  add_library(DilatedAttention::dilated_attention SHARED IMPORTED)
  set_target_properties(DilatedAttention::dilated_attention PROPERTIES
    IMPORTED_LOCATION
      "${_dilated_attention_prefix}/lib/libdilated_attention.so.0"
    IMPORTED_SONAME "libdilated_attention.so.0"
    INTERFACE_INCLUDE_DIRECTORIES
      "${_dilated_attention_prefix}/include/dilated_attention"
    INTERFACE_COMPILE_FEATURES cxx_std_17
    INTERFACE_LINK_LIBRARIES
      "absl::base;absl::core_headers;absl::flat_hash_map;absl::span;absl::status;absl::statusor;absl::strings;absl::synchronization;absl::time;dlpack::dlpack")
endif()

unset(_dilated_attention_prefix)
set(DilatedAttention_FOUND TRUE)
