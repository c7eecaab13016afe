// The misuse suite's harness: case registration and the child-process
// runner (see misuse_suite.cpp for what a case is and how it is judged).
#pragma once

#include <handoff/error.h>

#include <string>
#include <vector>

namespace handoff::misuse {

enum class Ending { kThrows, kAborts, kReturns };

struct Case {
  const char* name;
  Ending ending;
  ErrorCode code;       // kThrows only
  const char* message;  // substring of the error message, abort message or printed line
  void (*body)();
};

std::vector<Case>& registry();

struct Registrar {
  Registrar(const char* name, Ending ending, ErrorCode code, const char* message, void (*body)()) {
    registry().push_back({name, ending, code, message, body});
  }
};

// MISUSE_CASE(name, ending, code, "expected text") { body }
// (stress/CMakeLists.txt registers one CTest per line starting so.)
#define MISUSE_CASE(name, ending, code, message)                                                        \
  void misuse_##name();                                                                                  \
  const ::handoff::misuse::Registrar registrar_##name(#name, ::handoff::misuse::Ending::ending,          \
                                                      ::handoff::ErrorCode::code, message, &misuse_##name); \
  void misuse_##name()

// Ends a case that does not apply to this build (a debug-only check in a
// release build): the runner reports it skipped (exit status 77).
[[noreturn]] void skip(const char* why);
// Prints a line a kReturns case is judged by.
void say(const std::string& line);

}  // namespace handoff::misuse
