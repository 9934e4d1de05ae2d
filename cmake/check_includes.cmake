# Fails when a source file under DIR names a quoted include with a path in it.
#   cmake -DDIR=<src/server> -P cmake/check_includes.cmake
#
# Each layer of src/server sees the layers it may use through its include directories
# (src/server/CMakeLists.txt); a quoted include is a bare file name, found in one of them.
# With a path ("sqlite/walbuf.h", "../net/conn.h") a file could reach from a directory it
# may see into one it may not — store/ holds the backend's private sqlite/ — so paths are
# refused outright. Run before every layer is built (target tern_include_check).
cmake_minimum_required(VERSION 3.18)
if(NOT DIR)
  message(FATAL_ERROR "check_includes: DIR is not set")
endif()
file(GLOB_RECURSE files "${DIR}/*.c" "${DIR}/*.h")
set(bad "")
foreach(f ${files})
  file(STRINGS "${f}" lines REGEX "^[ \t]*#[ \t]*include[ \t]*\"[^\"]*[/\\\\][^\"]*\"")
  foreach(l ${lines})
    file(RELATIVE_PATH rel "${DIR}" "${f}")
    string(STRIP "${l}" l)
    list(APPEND bad "  ${rel}: ${l}")
  endforeach()
endforeach()
if(bad)
  list(JOIN bad "\n" text)
  message(FATAL_ERROR "quoted includes must name a bare file (the layer's include directories find it; "
                      "see src/server/CMakeLists.txt):\n${text}")
endif()
