# Checks the calls between the layers of src/server: every symbol a layer's library uses
# that another layer's library defines must belong to a layer it may use.
#
#   cmake -DNM=nm -DLAYERS=base,store,... -DARCHIVE_<l>=<lib.a> -DUSES_<l>=base,store
#         -DSTORE_H=<store.h> -P check_layers.cmake
#
# USES_<l> is everything l may call, transitively. One mapping: the functions store.h
# declares count as the store interface's (store.c defines them, each through the backend's
# ops table). Nothing of the backend (its query compiler included) may be called from above
# it. The include directories keep headers out; this keeps out calls made with a
# hand-written prototype.
cmake_minimum_required(VERSION 3.18)
foreach(v NM LAYERS STORE_H)
  if(NOT ${v})
    message(FATAL_ERROR "check_layers: ${v} is not set")
  endif()
endforeach()
string(REPLACE "," ";" layers "${LAYERS}")

# Function names declared by a header: identifiers before "(" outside comments. Brackets
# and semicolons go first: CMake would read them as list syntax.
function(declared_names header out)
  file(READ "${header}" text)
  string(REGEX REPLACE "[][;]" " " text "${text}")
  while(TRUE)
    string(FIND "${text}" "/*" a)
    if(a EQUAL -1)
      break()
    endif()
    string(SUBSTRING "${text}" 0 ${a} head)
    string(SUBSTRING "${text}" ${a} -1 rest)
    string(FIND "${rest}" "*/" b)
    if(b EQUAL -1)
      set(text "${head}")
      break()
    endif()
    math(EXPR b "${b} + 2")
    string(SUBSTRING "${rest}" ${b} -1 rest)
    set(text "${head} ${rest}")
  endwhile()
  string(REGEX MATCHALL "[A-Za-z_][A-Za-z0-9_]*[ \t\n]*\\(" calls "${text}")
  set(names "")
  foreach(c IN LISTS calls)
    string(REGEX REPLACE "[ \t\n]*\\($" "" c "${c}")
    list(APPEND names "${c}")
  endforeach()
  set(${out} "${names}" PARENT_SCOPE)
endfunction()
declared_names("${STORE_H}" store_names)

# Who defines what; what each object uses.
foreach(l IN LISTS layers)
  execute_process(COMMAND ${NM} -g -P --defined-only "${ARCHIVE_${l}}" OUTPUT_VARIABLE out RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "check_layers: ${NM} failed on ${ARCHIVE_${l}}")
  endif()
  string(REGEX MATCHALL "(^|\n)[A-Za-z_][A-Za-z0-9_.]* [A-Z] " defs "${out}")
  foreach(d IN LISTS defs)
    string(REGEX REPLACE "^\n?([^ ]+) .*" "\\1" name "${d}")
    set(owner "${l}")
    if(l STREQUAL "store_sqlite" AND name IN_LIST store_names)
      set(owner store) # declared by the interface, defined by its only backend
    endif()
    set("OWNER_${name}" "${owner}")
  endforeach()
endforeach()

set(bad "")
foreach(l IN LISTS layers)
  string(REPLACE "," ";" uses "${USES_${l}}")
  execute_process(COMMAND ${NM} -g -P --undefined-only "${ARCHIVE_${l}}" OUTPUT_VARIABLE out)
  string(REPLACE "\n" ";" lines "${out}")
  set(obj "?")
  foreach(line IN LISTS lines)
    if(line MATCHES "\\[([^]]+)\\]:$")
      set(obj "${CMAKE_MATCH_1}")
      continue()
    endif()
    if(NOT line MATCHES "^([A-Za-z_][A-Za-z0-9_.]*) U")
      continue()
    endif()
    set(name "${CMAKE_MATCH_1}")
    set(owner "${OWNER_${name}}")
    if(owner STREQUAL "" OR owner STREQUAL l OR owner IN_LIST uses)
      continue() # common, system, its own, or a layer below
    endif()
    list(APPEND bad "  ${l} (${obj}) calls ${name}, which is ${owner}'s")
  endforeach()
endforeach()
if(bad)
  list(REMOVE_DUPLICATES bad)
  list(JOIN bad "\n" text)
  message(FATAL_ERROR "calls against the layering (src/server/CMakeLists.txt):\n${text}")
endif()
list(LENGTH layers n)
message(STATUS "check_layers: ${n} layers, no call against the direction")
