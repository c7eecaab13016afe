# Installs the library with exported, namespaced CMake targets
# (find_package(handoff) -> handoff::allocator) and a pkg-config file.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(TARGETS handoff_allocator EXPORT handoffTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY allocator/include/handoff DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT handoffTargets NAMESPACE handoff:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/handoff)

configure_package_config_file(cmake/handoffConfig.cmake.in ${CMAKE_CURRENT_BINARY_DIR}/handoffConfig.cmake
                              INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/handoff)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/handoffConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/handoffConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/handoffConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/handoff)

configure_file(cmake/handoff-allocator.pc.in ${CMAKE_CURRENT_BINARY_DIR}/handoff-allocator.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/handoff-allocator.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
