# Writes OUT, a header defining TERN_COMMIT: the git commit the source tree SRC is at
# ("-dirty" when tracked files differ from it), or "unknown" for a tree without its own
# .git (a release tarball, even one unpacked inside another repository). Run at every
# build by the tern_version target; the file is rewritten only when its text changes, so
# an unchanged commit recompiles nothing.
#   cmake -DSRC=<source dir> -DOUT=<header> -P cmake/version.cmake
set(commit "unknown")
if(EXISTS "${SRC}/.git")
  execute_process(COMMAND git -C "${SRC}" rev-parse --short=12 HEAD
    OUTPUT_VARIABLE head RESULT_VARIABLE rc OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(rc EQUAL 0 AND NOT head STREQUAL "")
    set(commit "${head}")
    execute_process(COMMAND git -C "${SRC}" status --porcelain --untracked-files=no
      OUTPUT_VARIABLE changes RESULT_VARIABLE rc ERROR_QUIET)
    if(rc EQUAL 0 AND NOT changes STREQUAL "")
      set(commit "${commit}-dirty")
    endif()
  endif()
endif()
set(text "#define TERN_COMMIT \"${commit}\"\n")
set(old "")
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
endif()
if(NOT old STREQUAL text)
  file(WRITE "${OUT}" "${text}")
endif()
