# Installing and packaging assay: `cmake --install <build> [--prefix P]` and
# `cpack -G DEB` (three packages: libassay0, libassay-dev, assay). Included at
# the end of the top CMakeLists.txt; the layout and the components are here:
#   runtime  <libdir>/libassay.so.0{,.1.0}, <libdir>/assay/libassay_pprof.so
#            (the pprof plugin, which libassay.so loads from assay/ beside
#            itself), assay(7) (the environment variables)
#   dev      include/assay/*, <libdir>/libassay.a, the libassay.so link,
#            assay.pc + assay-static.pc, <libdir>/cmake/assay/ (find_package)
#   tools    bin/assay, bin/assay-trace, share/assay/probes/assay.bt, assay(1)
#   gdb      share/assay/gdb/ (tools/gdb/CMakeLists.txt)
include(CMakePackageConfigHelpers)

set(ASSAY_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/assay)

# ---- Libraries, headers, the CMake package (targets assay::assay, shared, and
# assay::assay_static, the whole archive; assay::assay_static_archive is the
# plain archive under it).
set_target_properties(assay_shared PROPERTIES EXPORT_NAME assay)
set_target_properties(assay PROPERTIES EXPORT_NAME assay_static_archive)
set_target_properties(assay_whole PROPERTIES EXPORT_NAME assay_static)
# install(EXPORT) does not rename targets inside $<LINK_LIBRARY>: say the
# installed name outright.
set_property(TARGET assay_whole PROPERTY INTERFACE_LINK_LIBRARIES
  "$<BUILD_INTERFACE:$<LINK_LIBRARY:WHOLE_ARCHIVE,assay>>"
  "$<INSTALL_INTERFACE:$<LINK_LIBRARY:WHOLE_ARCHIVE,assay::assay_static_archive>>")
foreach(t assay assay_shared assay_whole)
  target_include_directories(${t} INTERFACE $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
endforeach()
install(TARGETS assay_shared assay assay_whole EXPORT assayTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime NAMELINK_COMPONENT dev
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev)
# A plugin, dlopened by path: no soname, no namelink, off the search path.
install(TARGETS assay_pprof LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/assay COMPONENT runtime)
install(FILES include/assay/assay.h include/assay/cache.h include/assay/profiler.hpp
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/assay COMPONENT dev)
install(EXPORT assayTargets NAMESPACE assay:: DESTINATION ${ASSAY_CMAKEDIR} COMPONENT dev)
configure_package_config_file(tools/package/assayConfig.cmake.in
  ${PROJECT_BINARY_DIR}/assayConfig.cmake INSTALL_DESTINATION ${ASSAY_CMAKEDIR})
# The soname changes with the major version; so does compatibility.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/assayConfigVersion.cmake
  COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/assayConfig.cmake ${PROJECT_BINARY_DIR}/assayConfigVersion.cmake
        DESTINATION ${ASSAY_CMAKEDIR} COMPONENT dev)

# ---- pkg-config. Paths relative to the .pc file (${pcfiledir}), so the same
# files serve `cmake --install --prefix P` and the package's /usr.
file(RELATIVE_PATH ASSAY_PC_TO_PREFIX ${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig ${CMAKE_INSTALL_PREFIX})
string(REGEX REPLACE "/$" "" ASSAY_PC_TO_PREFIX "${ASSAY_PC_TO_PREFIX}")
foreach(pc assay assay-static)
  configure_file(tools/package/${pc}.pc.in ${PROJECT_BINARY_DIR}/${pc}.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/${pc}.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig
          COMPONENT dev)
endforeach()

# ---- bpftrace: assay-trace finds assay.bt and the library relative to itself
# (tools/probes/assay-trace's lib_rel and bt_rel, rewritten here for the install).
file(RELATIVE_PATH ASSAY_BIN_TO_PROBES ${CMAKE_INSTALL_FULL_BINDIR}
     ${CMAKE_INSTALL_FULL_DATADIR}/assay/probes)
file(READ tools/probes/assay-trace ASSAY_TRACE)
string(REGEX REPLACE "\nlib_rel=[^\n]*" "\nlib_rel=${ASSAY_BIN_TO_LIBDIR}/${ASSAY_SONAME}"
       ASSAY_TRACE "${ASSAY_TRACE}")
string(REGEX REPLACE "\nbt_rel=[^\n]*" "\nbt_rel=${ASSAY_BIN_TO_PROBES}" ASSAY_TRACE "${ASSAY_TRACE}")
file(WRITE ${PROJECT_BINARY_DIR}/tools/probes/assay-trace.new "${ASSAY_TRACE}")
file(COPY_FILE ${PROJECT_BINARY_DIR}/tools/probes/assay-trace.new
     ${PROJECT_BINARY_DIR}/tools/probes/assay-trace ONLY_IF_DIFFERENT)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${PROJECT_SOURCE_DIR}/tools/probes/assay-trace)
install(PROGRAMS ${PROJECT_BINARY_DIR}/tools/probes/assay-trace
        DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT tools)
install(FILES tools/probes/assay.bt DESTINATION ${CMAKE_INSTALL_DATADIR}/assay/probes
        COMPONENT tools)

# ---- The command and the man pages (roff in docs/man, gzipped as Debian wants).
install(TARGETS assay_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT tools)
set(ASSAY_MAN_GZ)
foreach(page assay.1 assay.7)
  add_custom_command(OUTPUT ${PROJECT_BINARY_DIR}/man/${page}.gz
    COMMAND ${CMAKE_COMMAND} -E make_directory ${PROJECT_BINARY_DIR}/man
    COMMAND gzip -9n -c ${PROJECT_SOURCE_DIR}/docs/man/${page} > ${PROJECT_BINARY_DIR}/man/${page}.gz
    DEPENDS ${PROJECT_SOURCE_DIR}/docs/man/${page}
    COMMENT "Compressing the man page ${page}")
  list(APPEND ASSAY_MAN_GZ ${PROJECT_BINARY_DIR}/man/${page}.gz)
endforeach()
add_custom_target(assay_man ALL DEPENDS ${ASSAY_MAN_GZ})
install(FILES ${PROJECT_BINARY_DIR}/man/assay.1.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1
        COMPONENT tools)
install(FILES ${PROJECT_BINARY_DIR}/man/assay.7.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man7
        COMPONENT runtime)

# ---- Debian packages: `cpack -G DEB` in the build directory.
set(CPACK_PACKAGE_NAME assay)
set(CPACK_PACKAGE_VENDOR "assay developers")
set(ASSAY_PACKAGE_MAINTAINER "assay developers <assay@localhost>" CACHE STRING
    "The packages' Maintainer field (cpack -G DEB)")
set(CPACK_PACKAGE_CONTACT "${ASSAY_PACKAGE_MAINTAINER}")
# No CPACK_PACKAGE_DESCRIPTION_SUMMARY: CPackDeb would put it before each
# package's own first line (its synopsis).
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES OFF)  # Release keeps symbols (-g): the gdb walker and profiles use them
set(CPACK_COMPONENTS_ALL runtime dev tools gdb)
set(CPACK_COMPONENT_RUNTIME_GROUP lib)
set(CPACK_COMPONENT_DEV_GROUP dev)
set(CPACK_COMPONENT_TOOLS_GROUP tools)
set(CPACK_COMPONENT_GDB_GROUP tools)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_GROUPING ONE_PER_GROUP)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)  # dpkg-shlibdeps (dpkg-dev)
set(ASSAY_DEB_VERSION "${PROJECT_VERSION}")
set(CPACK_DEBIAN_LIB_PACKAGE_NAME libassay${PROJECT_VERSION_MAJOR})
set(CPACK_DEBIAN_LIB_DESCRIPTION "assay: malloc replacement with a sampling heap profiler (library)
libassay.so replaces the malloc family and C++ operator new/delete (link it
or LD_PRELOAD it) and carries a sampling heap profiler that writes pprof
profiles (MALLOC_PROF), a debug heap (ASSAY_DEBUG) and object caches.
Profiles are written by the plugin libassay_pprof.so, loaded on first use.")
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)  # a shlibs file for libassay0
# libunwind is loaded at run time (profiler/unwinder.h): not a NEEDED
# library, so dpkg-shlibdeps cannot see it.
set(CPACK_DEBIAN_LIB_PACKAGE_DEPENDS "libunwind8")
set(CPACK_DEBIAN_DEV_PACKAGE_NAME libassay-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_DESCRIPTION "assay: malloc replacement with a sampling heap profiler (development)
Headers (<assay/assay.h>, <assay/profiler.hpp>, <assay/cache.h>), the static
library libassay.a, pkg-config files (assay, assay-static) and the CMake
package (find_package(assay): assay::assay, assay::assay_static).")
# The static library's link dependencies are the -dev packages' business.
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS
  "libassay${PROJECT_VERSION_MAJOR} (= ${ASSAY_DEB_VERSION}), libprotobuf-dev, zlib1g-dev, libdw-dev")
set(CPACK_DEBIAN_TOOLS_PACKAGE_NAME assay)
set(CPACK_DEBIAN_TOOLS_PACKAGE_SECTION devel)
set(CPACK_DEBIAN_TOOLS_DESCRIPTION "assay: malloc replacement with a sampling heap profiler (tools)
The assay command (assay run / top / diff / merge: runs a program on
libassay with the heap profiler on and reads pprof profiles without Go),
the gdb heap walker (share/assay/gdb/assay.py) and the bpftrace script
over the library's USDT probes (assay-trace).")
set(CPACK_DEBIAN_TOOLS_PACKAGE_DEPENDS "libassay${PROJECT_VERSION_MAJOR} (= ${ASSAY_DEB_VERSION})")
set(CPACK_DEBIAN_TOOLS_PACKAGE_RECOMMENDS "gdb, python3-protobuf")
set(CPACK_DEBIAN_TOOLS_PACKAGE_SUGGESTS "bpftrace, golang-go")
include(CPack)
