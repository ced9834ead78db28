# cmake/fl_install_generated.cmake -- run by `cmake --install` (see
# FleetleaseInstall.cmake): writes the files that name install paths from
# the prefix in force at install time.  DESTDIR is deliberately not part of
# these paths: a staged package must name where it will finally live.
#
# In: FL_SOURCE_DIR FL_STAGE FL_VERSION FL_BINDIR FL_LIBDIR FL_INCLUDEDIR
#     FL_UNITS, and CMAKE_INSTALL_PREFIX as cmake --install sets it.

function(fl_full out dir)
  if(IS_ABSOLUTE "${dir}")
    set(${out} "${dir}" PARENT_SCOPE)
  else()
    set(${out} "${CMAKE_INSTALL_PREFIX}/${dir}" PARENT_SCOPE)
  endif()
endfunction()

fl_full(FL_FULL_BINDIR "${FL_BINDIR}")
fl_full(FL_FULL_LIBDIR "${FL_LIBDIR}")
fl_full(FL_FULL_INCLUDEDIR "${FL_INCLUDEDIR}")

# fleetlease.pc
set(FL_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
configure_file("${FL_SOURCE_DIR}/cmake/fleetlease.pc.in" "${FL_STAGE}/fleetlease.pc" @ONLY)

# The example units name /usr/local/bin/fleetlease (the default prefix, so
# that the files in the repository verify as they are); installed copies
# name the binary where this install puts it.
foreach(u ${FL_UNITS})
  file(READ "${FL_SOURCE_DIR}/examples/systemd/${u}" text)
  string(REPLACE "/usr/local/bin/fleetlease" "${FL_FULL_BINDIR}/fleetlease" text "${text}")
  file(WRITE "${FL_STAGE}/systemd/${u}" "${text}")
endforeach()
