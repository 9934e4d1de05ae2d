# install.cmake — `make install`, `make deb` and `make run`'s targets (issue #15 point 1).
#
# What is installed, under the prefix (PREFIX, default /usr/local; DESTDIR honoured):
#   bin/ternd, bin/tern, bin/tern-bench
#   lib*/libtern.a, lib*/libtern.so.0, include/tern/*.h, lib*/pkgconfig/tern.pc
#   share/man/man8/ternd.8, share/man/man1/tern.1       (generated from the option table and
#                                                        the CLI's own --help: gen-docs.sh)
#   share/tern/web/                                     (CMakeLists.txt: the web bundle)
#   etc/tern/ternd.conf, lib/systemd/system/ternd.service
# The last two follow the file-system standard at install time: with the prefix /usr (the
# Debian package) they go to /etc/tern/ and /lib/systemd/system/, otherwise under the
# prefix (systemd also reads /usr/local/lib/systemd/system). They, and the pkg-config file,
# are made for the prefix given to `cmake --install`, not the one configured, so one build
# tree installs correctly anywhere and packages correctly for /usr.
include(GNUInstallDirs)

# `make run` builds these only: the server, the CLI and the pages ternd serves.
add_custom_target(run-targets)
add_dependencies(run-targets ternd tern-cli)
if(TARGET web)
  add_dependencies(run-targets web)
endif()

# ---- generated documents
set(TERN_GEN ${CMAKE_BINARY_DIR}/dist)
file(MAKE_DIRECTORY ${TERN_GEN})
add_custom_command(OUTPUT ${TERN_GEN}/ternd.conf ${TERN_GEN}/ternd.8
  COMMAND sh ${CMAKE_SOURCE_DIR}/cmake/gen-docs.sh conf $<TARGET_FILE:ternd> ${TERN_GEN}/ternd.conf data_dir=/var/lib/tern
  COMMAND sh ${CMAKE_SOURCE_DIR}/cmake/gen-docs.sh ternd-man $<TARGET_FILE:ternd> ${TERN_GEN}/ternd.8 ${PROJECT_VERSION}
  DEPENDS ternd ${CMAKE_SOURCE_DIR}/cmake/gen-docs.sh
  COMMENT "ternd.conf and ternd.8 from the option table" VERBATIM)
add_custom_command(OUTPUT ${TERN_GEN}/tern.1
  COMMAND sh ${CMAKE_SOURCE_DIR}/cmake/gen-docs.sh tern-man $<TARGET_FILE:tern-cli> ${TERN_GEN}/tern.1 ${PROJECT_VERSION}
  DEPENDS tern-cli ${CMAKE_SOURCE_DIR}/cmake/gen-docs.sh
  COMMENT "tern.1 from the CLI's usage" VERBATIM)
add_custom_target(dist-docs ALL DEPENDS ${TERN_GEN}/ternd.conf ${TERN_GEN}/ternd.8 ${TERN_GEN}/tern.1)

# ---- pkg-config: the prefix found from where the .pc file lies, whatever the prefix
file(RELATIVE_PATH TERN_PC_TO_PREFIX /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
string(REGEX REPLACE "/$" "" TERN_PC_TO_PREFIX "${TERN_PC_TO_PREFIX}")
configure_file(${CMAKE_SOURCE_DIR}/packaging/tern.pc.in ${TERN_GEN}/tern.pc @ONLY)

# ---- install rules (ternd's own is in CMakeLists.txt)
install(TARGETS tern-cli tern-bench RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS tern_static tern_shared
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} NAMELINK_SKIP)
# the libtern.so link is for building against it: installed beside the headers' .pc
install(TARGETS tern_shared LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} NAMELINK_ONLY)
install(DIRECTORY ${CMAKE_SOURCE_DIR}/include/tern DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.h")
install(FILES ${TERN_GEN}/tern.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
install(FILES ${TERN_GEN}/ternd.8 DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
install(FILES ${TERN_GEN}/tern.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(CODE "
  if(CMAKE_INSTALL_PREFIX STREQUAL \"/usr\")
    set(TERN_SYSCONFDIR /etc)
    set(TERN_UNITDIR /lib/systemd/system)
  else()
    set(TERN_SYSCONFDIR \"\${CMAKE_INSTALL_PREFIX}/etc\")
    set(TERN_UNITDIR \"\${CMAKE_INSTALL_PREFIX}/lib/systemd/system\")
  endif()
  set(TERN_BINDIR \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}\")
  configure_file(\"${CMAKE_SOURCE_DIR}/packaging/ternd.service.in\" \"${TERN_GEN}/ternd.service\" @ONLY)
  # file(INSTALL) puts \$DESTDIR in front of an absolute destination itself
  file(INSTALL \"${TERN_GEN}/ternd.conf\" DESTINATION \"\${TERN_SYSCONFDIR}/tern\" PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  file(INSTALL \"${TERN_GEN}/ternd.service\" DESTINATION \"\${TERN_UNITDIR}\")
")

# ---- the Debian package: `make deb` (cpack -G DEB in the build directory)
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME tern)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "tern maintainers <tern@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "realtime messaging (IM) server compatible with LeanCloud's")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "ternd speaks the LeanCloud realtime protocol, so apps built on LeanCloud's
IM SDKs keep working against a server of their own. The package has ternd
(the systemd service ternd.service, user tern, data in /var/lib/tern,
configuration in /etc/tern/ternd.conf), the tern command-line client, the
tern-bench load generator, and libtern, the C client SDK (static and shared
libraries, headers, pkg-config file).")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON) # libuv1, liburing2, libsqlite3-0, libhiredis0.14 (the cluster bus), …
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser, init-system-helpers (>= 1.54~)")
# installed with DESTDIR=<staging> and the prefix /usr, so that install(CODE) above sees the
# prefix itself and places the configuration and the unit in /etc and /lib
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
configure_file(${CMAKE_SOURCE_DIR}/packaging/debian/conffiles ${TERN_GEN}/debian/conffiles COPYONLY)
configure_file(${CMAKE_SOURCE_DIR}/packaging/debian/triggers ${TERN_GEN}/debian/triggers COPYONLY)
foreach(s postinst prerm postrm)
  configure_file(${CMAKE_SOURCE_DIR}/packaging/debian/${s} ${TERN_GEN}/debian/${s} COPYONLY)
endforeach()
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${TERN_GEN}/debian/conffiles ${TERN_GEN}/debian/triggers
  ${TERN_GEN}/debian/postinst ${TERN_GEN}/debian/prerm ${TERN_GEN}/debian/postrm)
set(CPACK_OUTPUT_FILE_PREFIX ${CMAKE_BINARY_DIR}/dist)
include(CPack)
