# The functions that add assay's tests, for tests/CMakeLists.txt and for
# tests/stress/CMakeLists.txt alone (the ASSAY_STRESS_ONLY tree).
include_guard(GLOBAL)
find_package(GTest REQUIRED)
include(GoogleTest)

# assay_add_gtest(NAME source...): a GoogleTest binary under ctest.
function(assay_add_gtest name)
  add_executable(${name} ${ARGN})
  target_compile_options(${name} PRIVATE ${ASSAY_WARNINGS} -fno-builtin)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR} ${PROJECT_SOURCE_DIR}/include)
  target_link_libraries(${name} PRIVATE assay_whole GTest::gtest_main Threads::Threads ${CMAKE_DL_LIBS})
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 300)
endfunction()

# assay_add_program_test(NAME source... ARGS ...): a plain program that exits
# non-zero on failure (stress tests take --smoke under ctest).
function(assay_add_program_test name)
  cmake_parse_arguments(T "" "" "SOURCES;ARGS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_compile_options(${name} PRIVATE ${ASSAY_WARNINGS} -fno-builtin)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR} ${PROJECT_SOURCE_DIR}/include)
  target_link_libraries(${name} PRIVATE assay_whole Threads::Threads ${CMAKE_DL_LIBS})
  add_test(NAME ${name} COMMAND ${name} ${T_ARGS})
  set_tests_properties(${name} PROPERTIES TIMEOUT 300)
endfunction()
