# Installs the library with exported, namespaced CMake targets
# (find_package(handoff) -> handoff::allocator, handoff::collector and their
# _shared twins) and a pkg-config file for each library.
#
# Two install components, one per layer: "allocator" (its library, public
# headers, generated config.h, CMake package and handoff-allocator.pc) is
# complete on its own, concurrent sweeper included;
# `cmake --install BUILD --component allocator` installs just that, and
# find_package(handoff COMPONENTS allocator) finds it. "collector" adds the
# collector on top. Headers under allocator/internal/ are never installed.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# HANDOFF_TEST_HOOKS (chaos points, negative controls; the sanitizer presets
# turn it on) is for this project's own tests: it changes class layouts, so
# an installed copy would force it on every consumer. Such a build refuses
# to install, before anything is copied.
if(HANDOFF_TEST_HOOKS)
  install(CODE "message(FATAL_ERROR \"handoff: this build has HANDOFF_TEST_HOOKS=ON (test-only chaos points and \
negative controls, which change class layouts); it is not installable. Configure a build without it \
(-DHANDOFF_TEST_HOOKS=OFF; with -DHANDOFF_SANITIZER=address or thread for a sanitizer build) and install that.\")" ALL_COMPONENTS)
endif()

# The targets carry their include directory (INSTALL_INTERFACE) already;
# an INCLUDES DESTINATION here would list it a second time.
foreach(_layer allocator collector)
  set(_handoff_installed handoff_${_layer})
  if(HANDOFF_BUILD_SHARED)
    list(APPEND _handoff_installed handoff_${_layer}_shared)
  endif()
  install(TARGETS ${_handoff_installed} EXPORT handoff_${_layer}_targets COMPONENT ${_layer}
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
  install(DIRECTORY ${_layer}/include/handoff DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT ${_layer})
  # handoffTargets-<layer>.cmake; handoffConfig.cmake includes the ones present.
  install(EXPORT handoff_${_layer}_targets NAMESPACE handoff:: FILE handoffTargets-${_layer}.cmake
          DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/handoff COMPONENT ${_layer})
endforeach()
install(DIRECTORY ${HANDOFF_GENERATED_INCLUDE}/handoff DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT allocator)

configure_package_config_file(cmake/handoffConfig.cmake.in ${CMAKE_CURRENT_BINARY_DIR}/handoffConfig.cmake
                              INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/handoff)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/handoffConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/handoffConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/handoffConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/handoff COMPONENT allocator)

# Relocatable: the .pc file finds the prefix relative to itself.
file(RELATIVE_PATH HANDOFF_PC_TO_PREFIX "${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig" "${CMAKE_INSTALL_PREFIX}")
string(REGEX REPLACE "/$" "" HANDOFF_PC_TO_PREFIX "${HANDOFF_PC_TO_PREFIX}")
configure_file(cmake/handoff-allocator.pc.in ${CMAKE_CURRENT_BINARY_DIR}/handoff-allocator.pc @ONLY)
configure_file(cmake/handoff-collector.pc.in ${CMAKE_CURRENT_BINARY_DIR}/handoff-collector.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/handoff-allocator.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig
        COMPONENT allocator)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/handoff-collector.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig
        COMPONENT collector)

# A consumer outside the tree builds against the installed files
# (release preset only: one configuration is enough to prove the packaging).
if(HANDOFF_BUILD_TESTS AND HANDOFF_SANITIZER STREQUAL "none" AND CMAKE_BUILD_TYPE STREQUAL "Release")
  add_test(NAME install.consumer
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cmake/install_test/run.sh ${CMAKE_BINARY_DIR}
                   ${CMAKE_BINARY_DIR}/install-test)
  set_tests_properties(install.consumer PROPERTIES LABELS install TIMEOUT 300)
  # The allocator layer alone: its component installed by itself, and a
  # consumer that allocates and reclaims with the concurrent sweeper.
  add_test(NAME install.allocator_alone
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cmake/install_test/allocator_alone.sh ${CMAKE_BINARY_DIR}
                   ${CMAKE_BINARY_DIR}/install-test-allocator)
  set_tests_properties(install.allocator_alone PROPERTIES LABELS install TIMEOUT 300)
endif()
