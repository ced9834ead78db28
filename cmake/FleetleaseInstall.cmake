# cmake/FleetleaseInstall.cmake -- what `cmake --install` puts in place
# (issue 8), and the build-time generation of the man page and the CLI
# reference.  Included once from the top-level CMakeLists.txt after the
# targets exist.
#
# Layout comes from GNUInstallDirs; CMAKE_INSTALL_PREFIX (also when given
# late, `cmake --install B --prefix P`) and DESTDIR are honoured.  Files
# that name install paths (fleetlease.pc, the systemd units) are therefore
# written at install time from the prefix in force then, not at configure
# time: a package staged with DESTDIR names the final prefix, a test's
# temporary prefix names itself.

include(CMakePackageConfigHelpers)

option(FL_INSTALL_RPATH
       "Give the installed fleetlease command a RUNPATH relative to itself ($ORIGIN), so a prefix outside the linker's search path works without ldconfig"
       ON)

# ---- the command finds its library ----------------------------------------
# In the build tree CMake's build RUNPATH points at the build directory.
# Installed, the command looks in ../lib (whatever LIBDIR is) relative to
# its own location, which survives a relocated prefix or DESTDIR staging;
# distributions that install into the system libdir may turn it off and
# rely on ldconfig.
if(FL_INSTALL_RPATH)
  file(RELATIVE_PATH _fl_bin_to_lib "${CMAKE_INSTALL_FULL_BINDIR}" "${CMAKE_INSTALL_FULL_LIBDIR}")
  set_target_properties(fleetlease_cli PROPERTIES INSTALL_RPATH "$ORIGIN/${_fl_bin_to_lib}")
endif()

# ---- binary, libraries, header, CMake package ----------------------------
install(TARGETS fleetlease_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS fleetlease fleetlease_static
        EXPORT fleetleaseTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${PROJECT_SOURCE_DIR}/include/fleetlease.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

set(FL_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/fleetlease)
install(EXPORT fleetleaseTargets
        NAMESPACE fleetlease::
        FILE fleetleaseTargets.cmake
        DESTINATION ${FL_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/fleetleaseConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/fleetleaseConfig.cmake
                              INSTALL_DESTINATION ${FL_CMAKE_DIR})
# 0.x: every minor release may break the API, so only the same minor matches.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/fleetleaseConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION}
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/fleetleaseConfig.cmake
              ${PROJECT_BINARY_DIR}/fleetleaseConfigVersion.cmake
        DESTINATION ${FL_CMAKE_DIR})

# ---- man pages and docs/cli.md from the --help texts ----------------------
# ONE source: the usage strings in src/cli (and src/http) as the built
# command prints them.  cmake/gen-docs.sh runs the command and turns its
# --help output into fleetlease.1 and into the generated block of
# docs/cli.md; tests/install checks that the block in the repository is
# current.  `cmake --build B --target cli-doc` rewrites the block in place.
find_program(FL_SH sh REQUIRED)
set(FL_GEN_DOCS ${PROJECT_SOURCE_DIR}/cmake/gen-docs.sh)
set(FL_MAN1 ${PROJECT_BINARY_DIR}/man/fleetlease.1)
add_custom_command(
  OUTPUT ${FL_MAN1}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${PROJECT_BINARY_DIR}/man
  COMMAND ${FL_SH} ${FL_GEN_DOCS} man $<TARGET_FILE:fleetlease_cli> ${PROJECT_VERSION} > ${FL_MAN1}.tmp
  COMMAND ${CMAKE_COMMAND} -E rename ${FL_MAN1}.tmp ${FL_MAN1}
  DEPENDS fleetlease_cli ${FL_GEN_DOCS}
  COMMENT "Generating man/fleetlease.1 from fleetlease --help"
  VERBATIM)
add_custom_target(fleetlease_man ALL DEPENDS ${FL_MAN1})
add_custom_target(cli-doc
  COMMAND ${FL_SH} ${FL_GEN_DOCS} update-md $<TARGET_FILE:fleetlease_cli> ${PROJECT_VERSION}
          ${PROJECT_SOURCE_DIR}/docs/cli.md
  DEPENDS fleetlease_cli ${FL_GEN_DOCS}
  COMMENT "Regenerating the reference block of docs/cli.md"
  VERBATIM)

install(FILES ${FL_MAN1} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES ${PROJECT_SOURCE_DIR}/man/fleetlease.3 DESTINATION ${CMAKE_INSTALL_MANDIR}/man3)

# ---- files that name install paths: written at install time --------------
set(FL_SYSTEMD_UNITS
  fleetlease.service
  fleetlease-gateway@.service
  fleetlease-nightly.service
  fleetlease-nightly.timer)
set(FL_GEN_STAGE ${PROJECT_BINARY_DIR}/install-generated)
install(CODE "
  set(FL_SOURCE_DIR \"${PROJECT_SOURCE_DIR}\")
  set(FL_STAGE \"${FL_GEN_STAGE}\")
  set(FL_VERSION \"${PROJECT_VERSION}\")
  set(FL_BINDIR \"${CMAKE_INSTALL_BINDIR}\")
  set(FL_LIBDIR \"${CMAKE_INSTALL_LIBDIR}\")
  set(FL_INCLUDEDIR \"${CMAKE_INSTALL_INCLUDEDIR}\")
  set(FL_UNITS \"${FL_SYSTEMD_UNITS}\")
  include(\"${PROJECT_SOURCE_DIR}/cmake/fl_install_generated.cmake\")
")
install(FILES ${FL_GEN_STAGE}/fleetlease.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
foreach(u ${FL_SYSTEMD_UNITS})
  install(FILES ${FL_GEN_STAGE}/systemd/${u} DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples/systemd)
endforeach()
install(FILES ${PROJECT_SOURCE_DIR}/examples/systemd/gateway.env.example
              ${PROJECT_SOURCE_DIR}/examples/systemd/fleetlease.env.example
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples/systemd)
install(FILES ${PROJECT_SOURCE_DIR}/docs/operations.md ${PROJECT_SOURCE_DIR}/docs/cli.md
              ${PROJECT_SOURCE_DIR}/docs/api.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR})
