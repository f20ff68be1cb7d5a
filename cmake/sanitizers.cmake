# TL_SANITIZE builds every target of this project (libraries, tools, tests) with the named GCC/Clang sanitizers:
# a comma-separated list such as "address,undefined"; ON means address,undefined; empty or OFF (the default) builds
# normally. Any report is fatal (-fno-sanitize-recover=all), so a test that triggers one fails. The run-time options
# (halt_on_error, detect_leaks, print_stacktrace, the LeakSanitizer suppressions of tests/sanitize/lsan.supp) are set
# by tests/sanitize/run.sh, which tools/test.sh calls; see tests/sanitize/README.md.
set(TL_SANITIZE "" CACHE STRING "Sanitizers for every target, e.g. address,undefined (ON: address,undefined)")

set(TL_SANITIZERS "")
if(TL_SANITIZE AND NOT TL_SANITIZE STREQUAL "OFF")
  if(TL_SANITIZE STREQUAL "ON")
    set(TL_SANITIZERS "address,undefined")
  else()
    set(TL_SANITIZERS "${TL_SANITIZE}")
  endif()
  # Directory-wide, before any target is defined: every compile and every link of this project gets them.
  add_compile_options(-fsanitize=${TL_SANITIZERS} -fno-sanitize-recover=all -fno-omit-frame-pointer)
  add_link_options(-fsanitize=${TL_SANITIZERS})
  # GCC 12-14 warn falsely inside libstdc++'s <regex> when it is instrumented at -O1 (GCC PR 105616,
  # "-Wmaybe-uninitialized with -O1 -fsanitize=address"); the normal build keeps the warning.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    add_compile_options(-Wno-maybe-uninitialized)
  endif()
  message(STATUS "tl: sanitizers ${TL_SANITIZERS}")
endif()
