#include "stress_cli.h"

#include <handoff/allocator.h>
#include <handoff/concurrent_sweeper.h>

#include <chrono>
#include <cstdio>
#include <thread>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <mutex>
#include <sstream>

namespace handoff::stress {
namespace {

void print_help(const ProgramInfo& info) {
  std::cout << "usage: " << info.name << " [--threads N] [--seconds S] [--seed X] [--smoke] [--help]\n\n"
            << info.summary << "\n\n"
            << "  --threads N   mutator threads (default " << info.defaults.threads << ")\n"
            << "  --seconds S   run time in seconds, fractions allowed (default " << info.defaults.seconds << ")\n"
            << "  --seed X      random seed; the same seed replays the same choices (default "
            << info.defaults.seed << ")\n"
            << "  --smoke       CI-sized run: " << info.smoke.threads << " threads, " << info.smoke.seconds
            << " s (explicit flags still win)\n"
            << "  --help        this text\n\n"
            << "exit status: 0 no violation found, 1 violation (the message names it and how to\n"
            << "reproduce it), 2 bad usage.\n\n"
            << handoff::kTunableSyntax << "\n\n"
            << "allocator tunables (environment):\n";
  AllocatorConfig config;
  print_tunables(std::cout, config, AllocatorConfig::table());
  SweeperConfig sweeper;
  print_tunables(std::cout, sweeper, SweeperConfig::table());
  if (info.extra_help != nullptr) info.extra_help(std::cout);
}

[[noreturn]] void usage_error(const ProgramInfo& info, const std::string& message) {
  std::cerr << info.name << ": " << message << "\n(run " << info.name << " --help for usage)\n";
  std::exit(2);
}

template <class T>
T parse_number(const ProgramInfo& info, const char* flag, const char* text) {
  std::istringstream in(text);
  T value{};
  in >> value;
  if (!in || !in.eof()) usage_error(info, std::string(flag) + " expects a number, got '" + text + "'");
  return value;
}

}  // namespace

Options parse_options(int argc, char** argv, const ProgramInfo& info) {
  Options options = info.defaults;
  bool threads_set = false;
  bool seconds_set = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) usage_error(info, std::string(arg) + " needs a value");
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      print_help(info);
      std::exit(0);
    } else if (arg == "--threads") {
      options.threads = parse_number<unsigned>(info, "--threads", value());
      threads_set = true;
    } else if (arg == "--seconds") {
      options.seconds = parse_number<double>(info, "--seconds", value());
      seconds_set = true;
    } else if (arg == "--seed") {
      options.seed = parse_number<std::uint64_t>(info, "--seed", value());
    } else if (arg == "--smoke") {
      options.smoke = true;
    } else {
      usage_error(info, "unknown argument '" + std::string(arg) + "'");
    }
  }
  if (options.smoke) {
    if (!threads_set) options.threads = info.smoke.threads;
    if (!seconds_set) options.seconds = info.smoke.seconds;
  }
  if (options.threads == 0 || options.threads > 1024) usage_error(info, "--threads must be 1..1024");
  if (!(options.seconds > 0) || options.seconds > 86400) usage_error(info, "--seconds must be in (0, 86400]");
  return options;
}

double run_with_progress(double seconds, const std::function<void(double)>& progress) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration<double>(seconds);
  auto next = start + std::chrono::seconds(1);
  auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
  while (Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (Clock::now() >= next) {
      progress(elapsed());
      next += std::chrono::seconds(1);
    }
  }
  return elapsed();
}

bool take_flag(int& argc, char** argv, std::string_view flag) {
  bool found = false;
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    if (flag == argv[i]) {
      found = true;
    } else {
      argv[out++] = argv[i];
    }
  }
  argc = out;
  return found;
}

std::optional<std::string> take_flag_value(int& argc, char** argv, std::string_view flag, const ProgramInfo& info) {
  std::optional<std::string> value;
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    if (flag == argv[i]) {
      if (i + 1 >= argc) usage_error(info, std::string(flag) + " needs a value");
      value = argv[++i];
    } else {
      argv[out++] = argv[i];
    }
  }
  argc = out;
  return value;
}

std::string reproduce_command(const ProgramInfo& info, const Options& options) {
  std::ostringstream out;
  out << info.name << " --threads " << options.threads << " --seconds " << options.seconds << " --seed "
      << options.seed;
  if (options.smoke) out << " --smoke";
  if (!options.extra_flags.empty()) out << " " << options.extra_flags;
  return out.str();
}

void fail(const ProgramInfo& info, const Options& options, std::string_view what) {
  static std::mutex one_report;  // two threads may find violations at once
  std::lock_guard lock(one_report);
  std::cerr << info.name << ": VIOLATION: " << what << "\n  reproduce with: " << reproduce_command(info, options)
            << "\n";
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  std::_Exit(1);
}

}  // namespace handoff::stress
