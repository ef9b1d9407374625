# The `assay` command's sources but main.cc: the CLI's objects, compiled as
# assay_cli_objs here and again with sanitizers by tests/fuzz (fuzz_profile_reader).
set(ASSAY_CLI_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/args.cc
  ${CMAKE_CURRENT_LIST_DIR}/cmd_diff.cc
  ${CMAKE_CURRENT_LIST_DIR}/cmd_merge.cc
  ${CMAKE_CURRENT_LIST_DIR}/cmd_run.cc
  ${CMAKE_CURRENT_LIST_DIR}/cmd_top.cc
  ${CMAKE_CURRENT_LIST_DIR}/format.cc
  ${CMAKE_CURRENT_LIST_DIR}/merge.cc
  ${CMAKE_CURRENT_LIST_DIR}/profile_files.cc
  ${CMAKE_CURRENT_LIST_DIR}/profile_io.cc
  ${CMAKE_CURRENT_LIST_DIR}/report.cc
  # The one writer of profile files, shared with the pprof plugin.
  ${CMAKE_CURRENT_LIST_DIR}/../../pprof/profile_file.cc
)
# `assay run` finds an installed libassay.so.N through bindir -> libdir (a
# source property: set in each directory that compiles the sources).
set_property(SOURCE ${CMAKE_CURRENT_LIST_DIR}/cmd_run.cc APPEND PROPERTY COMPILE_DEFINITIONS
  ASSAY_BIN_TO_LIBDIR="${ASSAY_BIN_TO_LIBDIR}" ASSAY_SONAME="${ASSAY_SONAME}")
