# check.cmake: compiles log_fields.cpp once per CASE (see its header). Run as
#   cmake -DCXX=... -DSRC=... -DINCLUDE=... -DCASES=7 -P check.cmake
# Fails when CASE 0 does not compile or when any other CASE does.
foreach(case RANGE 0 ${CASES})
  execute_process(
    COMMAND ${CXX} -std=c++20 -fsyntax-only -I${INCLUDE} -DCASE=${case} ${SRC}
    RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE diagnostics)
  if(case EQUAL 0 AND NOT rc EQUAL 0)
    message(FATAL_ERROR "CASE 0 (accepted field types) does not compile:\n${diagnostics}")
  elseif(case GREATER 0 AND rc EQUAL 0)
    message(FATAL_ERROR "CASE ${case}: util/log.h accepted text made at run time (see ${SRC})")
  endif()
  message(STATUS "CASE ${case}: ${rc}")
endforeach()
