# Installs the library with exported, namespaced CMake targets
# (find_package(handoff) -> handoff::allocator) and a pkg-config file.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(TARGETS handoff_allocator handoff_collector EXPORT handoffTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY allocator/include/handoff collector/include/handoff DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT handoffTargets NAMESPACE handoff:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/handoff)

configure_package_config_file(cmake/handoffConfig.cmake.in ${CMAKE_CURRENT_BINARY_DIR}/handoffConfig.cmake
                              INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/handoff)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/handoffConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/handoffConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/handoffConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/handoff)

# Relocatable: the .pc file finds the prefix relative to itself.
file(RELATIVE_PATH HANDOFF_PC_TO_PREFIX "${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig" "${CMAKE_INSTALL_PREFIX}")
configure_file(cmake/handoff-allocator.pc.in ${CMAKE_CURRENT_BINARY_DIR}/handoff-allocator.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/handoff-allocator.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# A consumer outside the tree builds against the installed files
# (release preset only: one configuration is enough to prove the packaging).
if(HANDOFF_BUILD_TESTS AND HANDOFF_SANITIZER STREQUAL "none" AND CMAKE_BUILD_TYPE STREQUAL "Release")
  add_test(NAME install.consumer
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cmake/install_test/run.sh ${CMAKE_BINARY_DIR}
                   ${CMAKE_BINARY_DIR}/install-test)
  set_tests_properties(install.consumer PROPERTIES LABELS install TIMEOUT 300)
endif()
