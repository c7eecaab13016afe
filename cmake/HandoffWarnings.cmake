# Warnings for the project's own targets.
add_library(handoff_warnings INTERFACE)
target_compile_options(handoff_warnings INTERFACE -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
                                                  -Wold-style-cast -Wno-missing-field-initializers)
