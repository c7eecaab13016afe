// Shared command line, progress and verdict handling for the stress
// programs. Every program takes --threads N --seconds S --seed X, --smoke (a
// CI-sized run) and --help; prints a progress line about once a second; and
// exits 0 (no violation), 1 (violation, with the flags that reproduce it) or
// 2 (bad usage).
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>

namespace handoff::stress {

struct Options {
  unsigned threads = 4;
  double seconds = 10.0;
  std::uint64_t seed = 1;
  bool smoke = false;
  // A program's own flags ("--mode heap"), appended to the reproduce command.
  std::string extra_flags = {};
};

struct ProgramInfo {
  const char* name;
  const char* summary;
  Options defaults;
  Options smoke;  // values --smoke selects unless set explicitly
  // Optional: more --help text (a program's own tunables), printed last.
  void (*extra_help)(std::ostream& out) = nullptr;
};

// Parses argv; prints help or a usage error and exits (0 / 2) when needed.
Options parse_options(int argc, char** argv, const ProgramInfo& info);

// Program-specific flags, taken out of argv before parse_options runs:
// take_flag removes `flag` and says whether it was there; take_flag_value
// removes `flag VALUE` and returns VALUE (exits 2 when VALUE is missing).
bool take_flag(int& argc, char** argv, std::string_view flag);
std::optional<std::string> take_flag_value(int& argc, char** argv, std::string_view flag, const ProgramInfo& info);

// The exact flags that reproduce this run (with --smoke and extra_flags).
std::string reproduce_command(const ProgramInfo& info, const Options& options);

// Sleeps until `seconds` have passed, calling progress(elapsed_seconds)
// about once a second; returns the elapsed time.
double run_with_progress(double seconds, const std::function<void(double)>& progress);

// Reports a violation with the reproduction command and exits 1 at once
// (std::_Exit: other threads may still run, so no static destructors).
[[noreturn]] void fail(const ProgramInfo& info, const Options& options, std::string_view what);

}  // namespace handoff::stress
