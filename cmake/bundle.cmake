# The link choices of the self-contained GPU bundle (tools/gpu_bundle.sh): binaries that run on a machine which has
# a driver, cuDNN and cuBLAS but none of the Debian libraries tl is built against here.
#
# tools/gpu_bundle.sh injects this file with -DCMAKE_PROJECT_tl_INCLUDE=<repo>/cmake/bundle.cmake, so CMake runs it
# at the end of project(tl), before any find_package: the normal build never reads it and CMakeLists.txt needs no
# change. (Including it from CMakeLists.txt right after project() works too; include_guard keeps it to one run.)
# Nothing happens unless TL_STATIC_DEPS=ON.
#
# What it does, and why each choice:
#   static  HDF5, libjpeg-turbo, libpng, zlib, libgomp: Debian ships their .a; HDF5's archive then needs libsz,
#           libaec, zlib, libdl and libm at the end of every link line (its .pc file names none of them). The
#           archive's S3 driver (libcurl, libcrypto) is never referenced by tl, so it is not pulled in.
#   static  libstdc++ and libgcc (TL_STATIC_CXX_RUNTIME, default ON): the binaries do not depend on the C++
#           runtime of the GPU machine's image. The shared libraries copied beside them (protobuf, benchmark) and
#           cuDNN still load that machine's libstdc++.so.6; OFF links it dynamically instead.
#   static  GoogleTest (Debian ships only .a) and the CUDA runtime (cudart_static, kernels/CMakeLists.txt).
#   shared  OpenBLAS: its static archive is built for every x86 core type (DYNAMIC_ARCH) and adds 25 MB to each
#           binary; one shared copy (compressed in the bundle) serves all of them.
#   shared  protobuf: Debian's libonnx_proto.so (no .a) links libprotobuf.so.32; a second, static protobuf in the
#           executable would register onnx.proto's descriptors twice and abort at start.
#   shared  libzip, Google Benchmark: Debian ships no static archive (only libbenchmark_main.a, linked statically).
#   shared  cuDNN, cuBLAS, the driver's libcuda: they must come from the GPU machine (tools/gpu_check.sh finds them).
# Every binary gets the run path $ORIGIN/../lib, the bundle's lib/ folder, for the shared libraries copied there.
include_guard(GLOBAL)

option(TL_STATIC_DEPS "Link the dependencies statically where Debian ships archives (the GPU bundle)" OFF)
option(TL_STATIC_CXX_RUNTIME "With TL_STATIC_DEPS: link libstdc++ and libgcc statically" ON)
if(NOT TL_STATIC_DEPS)
  return()
endif()

find_package(PkgConfig REQUIRED)

# Seeds the cache entry `var` that a later find_library (pkg_check_modules, FindZLIB, FindOpenMP) would fill, with
# the first archive of `names` found in `dirs`, so that search keeps it. Without an archive the entry is left
# unset: the later search finds the shared library, and tools/gpu_bundle.sh copies it into the bundle.
function(_tl_bundle_pick_static var names dirs)
  unset(${var} CACHE)
  find_library(${var} NAMES ${names} HINTS ${dirs} NO_DEFAULT_PATH)
  if(NOT ${var})
    find_library(${var} NAMES ${names})
  endif()
  if(${var})
    message(STATUS "tl bundle: static ${${var}}")
  else()
    unset(${var} CACHE)
    message(WARNING "tl bundle: no static ${names}; the shared library will be linked and copied instead")
  endif()
endfunction()

# The pkg_check_modules prefixes and names are the ones CMakeLists.txt uses: PkgConfig::HDF5 (-lhdf5) and
# PkgConfig::IMAGE_CODECS (-ljpeg -lpng16). The cache entry name is pkgcfg_lib_<PREFIX>_<name>.
pkg_check_modules(_tl_bundle_hdf5 QUIET hdf5)
_tl_bundle_pick_static(pkgcfg_lib_HDF5_hdf5 "libhdf5.a;libhdf5_serial.a" "${_tl_bundle_hdf5_LIBRARY_DIRS}")
pkg_check_modules(_tl_bundle_jpeg QUIET libjpeg)
_tl_bundle_pick_static(pkgcfg_lib_IMAGE_CODECS_jpeg libjpeg.a "${_tl_bundle_jpeg_LIBRARY_DIRS}")
pkg_check_modules(_tl_bundle_png QUIET libpng)
_tl_bundle_pick_static(pkgcfg_lib_IMAGE_CODECS_png16 "libpng16.a;libpng.a" "${_tl_bundle_png_LIBRARY_DIRS}")

# FindZLIB (CMake >= 3.24) looks for libz.a itself when asked.
set(ZLIB_USE_STATIC_LIBS ON)
unset(ZLIB_LIBRARY_RELEASE CACHE)
unset(ZLIB_LIBRARY_DEBUG CACHE)

# FindOpenMP links the library it finds as OpenMP_gomp_LIBRARY; GCC keeps libgomp.a beside its own files.
execute_process(COMMAND ${CMAKE_CXX_COMPILER} -print-file-name=libgomp.a OUTPUT_VARIABLE _tl_bundle_gomp
                OUTPUT_STRIP_TRAILING_WHITESPACE)
get_filename_component(_tl_bundle_gomp_dir "${_tl_bundle_gomp}" DIRECTORY)
_tl_bundle_pick_static(OpenMP_gomp_LIBRARY libgomp.a "${_tl_bundle_gomp_dir}")

# What the static HDF5 (and libpng) archives need, after every library on the link line: the CXX and CUDA
# "standard libraries" come last. CUDA's entry is set before cmake/cuda.cmake enables the language; a normal
# variable set here shadows the cache entry that step creates (policy CMP0126).
set(_tl_bundle_tail "")
foreach(archive libsz.a libaec.a libz.a)
  string(MAKE_C_IDENTIFIER "_tl_bundle_${archive}" cache_var)
  find_library(${cache_var} NAMES ${archive})
  if(${cache_var})
    string(APPEND _tl_bundle_tail " ${${cache_var}}")
  else()
    # Not fatal: an HDF5 built without szip needs no libsz; a missing symbol then shows at the link.
    message(WARNING "tl bundle: ${archive} not found; a static HDF5 may fail to link without it")
  endif()
endforeach()
string(APPEND _tl_bundle_tail " -ldl -lm")
string(APPEND CMAKE_CXX_STANDARD_LIBRARIES "${_tl_bundle_tail}")
string(APPEND CMAKE_CUDA_STANDARD_LIBRARIES "${_tl_bundle_tail}")

if(TL_STATIC_CXX_RUNTIME)
  # nvcc does not know the GCC driver's flags, so an executable that nvcc links gets them through -Xcompiler.
  add_link_options("$<$<LINK_LANGUAGE:CXX>:-static-libstdc++;-static-libgcc>"
                   "$<$<LINK_LANGUAGE:CUDA>:-Xcompiler=-static-libstdc++,-static-libgcc>")
endif()

# The bundle's lib/ folder beside bin/; the build tree keeps its own run path as well, so build-gpu/ runs here.
list(APPEND CMAKE_BUILD_RPATH "$ORIGIN/../lib")

message(STATUS "tl bundle: TL_STATIC_DEPS=ON, static C++ runtime ${TL_STATIC_CXX_RUNTIME}, "
               "link tail:${_tl_bundle_tail}")
