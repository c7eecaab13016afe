# Checks of the source tree's structure (label: structure). They read the
# sources, not the build, so they run in one configuration only (release),
# each well under a second.
#   structure.layers          allocator/ names the collector only in comments
#                             and includes no collector header (STYLE.md 8);
#                             the collector includes no marked_block.h or
#                             directory.h and names MarkedBlock only on its
#                             hot mark path;
#                             no installed header includes an internal one
#   structure.comment_names   every A::b and f() a comment or doc names exists
#                             (STYLE.md 16)
# Each has a negative control: the same check with a planted violation
# (scripts/testdata/) must fail and name it.
if(NOT (HANDOFF_SANITIZER STREQUAL "none" AND CMAKE_BUILD_TYPE STREQUAL "Release"))
  return()
endif()
find_package(Python3 COMPONENTS Interpreter)
if(NOT Python3_Interpreter_FOUND)
  message(STATUS "python3 not found: the structure checks (label: structure) are skipped")
  return()
endif()
set(_handoff_scripts ${PROJECT_SOURCE_DIR}/scripts)
add_test(NAME structure.layers COMMAND Python3::Interpreter ${_handoff_scripts}/check_layers.py ${PROJECT_SOURCE_DIR})
add_test(NAME structure.layers.negative_control
         COMMAND Python3::Interpreter ${_handoff_scripts}/check_layers.py ${PROJECT_SOURCE_DIR}
                 --also ${_handoff_scripts}/testdata/layer_leak.cpp)
# The exit code is ignored when a pass expression is set: the output must
# name both planted leaks, and the check's own verdict must be a failure.
set_tests_properties(structure.layers.negative_control PROPERTIES PASS_REGULAR_EXPRESSION
  "layer_leak.cpp:4: includes <handoff/heap.h>.*layer_leak.cpp:5: names the collector|layer_leak.cpp:5: names the collector.*layer_leak.cpp:4: includes <handoff/heap.h>")
add_test(NAME structure.layers.collector_negative_control
         COMMAND Python3::Interpreter ${_handoff_scripts}/check_layers.py ${PROJECT_SOURCE_DIR}
                 --also-collector ${_handoff_scripts}/testdata/block_reach.cpp)
set_tests_properties(structure.layers.collector_negative_control PROPERTIES PASS_REGULAR_EXPRESSION
  "block_reach.cpp:4: includes <handoff/marked_block.h>.*block_reach.cpp:5: names MarkedBlock outside")
add_test(NAME structure.layers.directory_negative_control
         COMMAND Python3::Interpreter ${_handoff_scripts}/check_layers.py ${PROJECT_SOURCE_DIR}
                 --also-collector ${_handoff_scripts}/testdata/directory_reach.cpp)
set_tests_properties(structure.layers.directory_negative_control PROPERTIES PASS_REGULAR_EXPRESSION
  "directory_reach.cpp:4: includes <handoff/directory.h>")
add_test(NAME structure.layers.installed_negative_control
         COMMAND Python3::Interpreter ${_handoff_scripts}/check_layers.py ${PROJECT_SOURCE_DIR}
                 --also-installed ${_handoff_scripts}/testdata/installed_leak.h)
set_tests_properties(structure.layers.installed_negative_control PROPERTIES PASS_REGULAR_EXPRESSION
  "installed_leak.h:4: installed header includes <handoff/limbo.h>, an internal header")
add_test(NAME structure.comment_names
         COMMAND Python3::Interpreter ${_handoff_scripts}/check_comment_names.py ${PROJECT_SOURCE_DIR})
add_test(NAME structure.comment_names.negative_control
         COMMAND Python3::Interpreter ${_handoff_scripts}/check_comment_names.py ${PROJECT_SOURCE_DIR}
                 --also ${_handoff_scripts}/testdata/stale_comment.h)
set_tests_properties(structure.comment_names.negative_control PROPERTIES PASS_REGULAR_EXPRESSION
  "stale_comment.h:3: Directory::release_block names nothing.*stale_comment.h:3: purge_idle\\(\\) names nothing")
set_tests_properties(structure.layers structure.layers.negative_control
                     structure.layers.collector_negative_control structure.layers.directory_negative_control
                     structure.layers.installed_negative_control
                     structure.comment_names
                     structure.comment_names.negative_control PROPERTIES LABELS structure TIMEOUT 60)
