# What the two libraries share once both targets exist: the generated
# configuration header, the warnings, and the shared variants.
#
# Shared libraries. Like mimalloc and jemalloc, both variants are built and
# installed side by side: libhandoff_allocator.a / .so and
# libhandoff_collector.a / .so, the shared ones with a soname. Static stays
# the default target (handoff::allocator, handoff::collector: the tests and
# the benchmarks measure the inline fast path against a static archive);
# handoff::allocator_shared and handoff::collector_shared are the shared
# ones, and pkg-config's -lhandoff_* picks the shared one as the linker
# does, or the static one with -Wl,-Bstatic or -static. The shared objects
# are the static library's own object files (built position-independent),
# so the pair costs one link, not a second compile. The soname carries
# major.minor while the major is 0, matching the package's
# SameMinorVersion compatibility: a 0.x minor release may change the ABI.
#
# One definition of each process-wide global: block_range_map (the 32 MiB
# map the inline write barrier reads) and the inline thread_local
# tls_records are defined in the shared library and exported with default
# visibility, so the barrier and the allocation fast path inlined into a
# program see the library's (cmake/install_test/consumer.cpp checks both).
option(HANDOFF_BUILD_SHARED "Also build the shared libraries (libhandoff_*.so) beside the static ones" ON)

set(HANDOFF_CONFIG_TEST_HOOKS 0)
if(HANDOFF_TEST_HOOKS)
  set(HANDOFF_CONFIG_TEST_HOOKS 1)
endif()

# A sanitizer build is usable only by a program instrumented the same way
# (the library calls the sanitizer runtime). The exported targets and the
# pkg-config files carry the flags, and <handoff/config.h> refuses a
# translation unit compiled without them, with a message.
set(HANDOFF_CONFIG_ASAN 0)
set(HANDOFF_CONFIG_TSAN 0)
set(HANDOFF_SANITIZE_FLAGS "")
if(HANDOFF_SANITIZER STREQUAL "address")
  set(HANDOFF_CONFIG_ASAN 1)
  set(HANDOFF_SANITIZE_FLAGS -fsanitize=address -fsanitize=undefined)
elseif(HANDOFF_SANITIZER STREQUAL "thread")
  set(HANDOFF_CONFIG_TSAN 1)
  set(HANDOFF_SANITIZE_FLAGS -fsanitize=thread)
endif()
string(JOIN " " HANDOFF_PC_SANITIZE_FLAGS ${HANDOFF_SANITIZE_FLAGS})
# handoff_export_sanitizer(<target>): the flags for installed consumers (the
# build tree applies them to every target already).
function(handoff_export_sanitizer target)
  if(HANDOFF_SANITIZE_FLAGS)
    target_compile_options(${target} INTERFACE $<INSTALL_INTERFACE:${HANDOFF_SANITIZE_FLAGS}>)
    target_link_options(${target} INTERFACE $<INSTALL_INTERFACE:${HANDOFF_SANITIZE_FLAGS}>)
  endif()
endfunction()
set(HANDOFF_GENERATED_INCLUDE ${PROJECT_BINARY_DIR}/generated/include)
configure_file(${PROJECT_SOURCE_DIR}/cmake/config.h.in ${HANDOFF_GENERATED_INCLUDE}/handoff/config.h @ONLY)

target_sources(handoff_allocator PRIVATE ${PROJECT_SOURCE_DIR}/allocator/src/build_config.cpp)
foreach(_lib handoff_allocator handoff_collector)
  target_include_directories(${_lib} PUBLIC $<BUILD_INTERFACE:${HANDOFF_GENERATED_INCLUDE}>)
  # Compile options only: linking the warnings target would leave an empty
  # $<LINK_ONLY:> in the exported static targets.
  target_compile_options(${_lib} PRIVATE $<TARGET_PROPERTY:handoff_warnings,INTERFACE_COMPILE_OPTIONS>)
  handoff_export_sanitizer(${_lib})
endforeach()

set(HANDOFF_SOVERSION ${PROJECT_VERSION_MAJOR})
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(HANDOFF_SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR})
endif()

# handoff_add_shared(<static target> <export name> <public dependency>...)
function(handoff_add_shared static export_name)
  add_library(${static}_shared SHARED $<TARGET_OBJECTS:${static}>)
  add_library(handoff::${export_name}_shared ALIAS ${static}_shared)
  set_target_properties(${static}_shared PROPERTIES
    OUTPUT_NAME ${static} EXPORT_NAME ${export_name}_shared
    VERSION ${PROJECT_VERSION} SOVERSION ${HANDOFF_SOVERSION})
  target_include_directories(${static}_shared PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/${export_name}/include>
    $<BUILD_INTERFACE:${HANDOFF_GENERATED_INCLUDE}>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  target_compile_features(${static}_shared PUBLIC cxx_std_20)
  if(HANDOFF_TEST_HOOKS)
    target_compile_definitions(${static}_shared PUBLIC $<BUILD_INTERFACE:HANDOFF_TEST_HOOKS=1>)
  endif()
  target_link_libraries(${static}_shared PUBLIC ${ARGN} Threads::Threads)
  handoff_export_sanitizer(${static}_shared)
endfunction()

if(HANDOFF_BUILD_SHARED)
  handoff_add_shared(handoff_allocator allocator)
  handoff_add_shared(handoff_collector collector handoff_allocator_shared)
endif()
