// The misuse suite's runner: re-executes this program with --child CASE,
// collects its output and judges how it ended.
#include "misuse_harness.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>

namespace handoff::misuse {

std::vector<Case>& registry() {
  static std::vector<Case> cases;
  return cases;
}

namespace {
constexpr const char* kSkipped = "misuse-suite: SKIPPED: ";
}  // namespace

void skip(const char* why) {
  std::printf("%s%s\n", kSkipped, why);
  std::fflush(stdout);
  std::_Exit(0);
}

void say(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

}  // namespace handoff::misuse

namespace {

using handoff::Error;
using handoff::misuse::Case;
using handoff::misuse::Ending;
using handoff::misuse::kSkipped;
using handoff::misuse::registry;

const Case* find_case(std::string_view name) {
  for (const Case& c : registry()) {
    if (name == c.name) return &c;
  }
  return nullptr;
}

[[noreturn]] void run_child(const Case& c) {
  try {
    c.body();
    std::printf("misuse-suite: returned\n");
    std::fflush(nullptr);
    std::_Exit(0);
  } catch (const Error& e) {
    std::printf("misuse-suite: handoff::Error code=%s what=%s\n", handoff::error_code_name(e.code()), e.what());
    std::fflush(nullptr);
    std::_Exit(3);
  } catch (const std::exception& e) {
    std::printf("misuse-suite: foreign exception: %s\n", e.what());
    std::fflush(nullptr);
    std::_Exit(4);
  }
}

struct ChildResult {
  int status = 0;
  bool timed_out = false;
  std::string output;
};

ChildResult spawn(const char* self, const Case& c) {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) {
    std::perror("pipe");
    std::exit(2);
  }
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(pipe_fds[1], 1);
    dup2(pipe_fds[1], 2);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    execl(self, self, "--child", c.name, static_cast<char*>(nullptr));
    std::_Exit(127);
  }
  close(pipe_fds[1]);
  ChildResult result;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  char buffer[4096];
  for (;;) {
    pollfd fd{pipe_fds[0], POLLIN, 0};
    const int ready = poll(&fd, 1, 100);
    if (ready > 0) {
      const ssize_t n = read(pipe_fds[0], buffer, sizeof buffer);
      if (n <= 0) break;
      result.output.append(buffer, static_cast<std::size_t>(n));
    }
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      result.timed_out = true;
      break;
    }
  }
  close(pipe_fds[0]);
  waitpid(pid, &result.status, 0);
  return result;
}

std::string describe_ending(const ChildResult& r) {
  if (r.timed_out) return "hung (killed after 30 s)";
  if (WIFSIGNALED(r.status)) return std::string("killed by signal ") + std::to_string(WTERMSIG(r.status)) + " (" + strsignal(WTERMSIG(r.status)) + ")";
  if (WIFEXITED(r.status)) {
    switch (WEXITSTATUS(r.status)) {
      case 0: return "returned";
      case 3: return "threw handoff::Error";
      case 4: return "threw a foreign exception";
      default: return "exited with status " + std::to_string(WEXITSTATUS(r.status));
    }
  }
  return "ended oddly";
}

std::string expected_ending(const Case& c) {
  switch (c.ending) {
    case Ending::kThrows: return std::string("threw handoff::Error (") + handoff::error_code_name(c.code) + ") containing \"" + c.message + "\"";
    case Ending::kAborts: return std::string("aborted (SIGABRT) with \"") + c.message + "\"";
    case Ending::kReturns: return std::string("returned, printing \"") + c.message + "\"";
  }
  return {};
}

// Returns 0 pass, 1 fail, 77 skipped.
int judge(const Case& c, const ChildResult& r) {
  const std::string& out = r.output;
  if (out.find(kSkipped) != std::string::npos && WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0) {
    std::printf("SKIP %s: %s", c.name, out.substr(out.find(kSkipped) + std::strlen(kSkipped)).c_str());
    return 77;
  }
  std::string problem;
  const bool crashed = WIFSIGNALED(r.status) && (WTERMSIG(r.status) == SIGSEGV || WTERMSIG(r.status) == SIGBUS);
  if (r.timed_out) {
    problem = "the child hung";
  } else if (crashed) {
    problem = "the child crashed";
  } else if (out.find("Sanitizer") != std::string::npos || out.find("runtime error:") != std::string::npos) {
    problem = "a sanitizer reported an error";
  } else {
    const bool has_message = out.find(c.message) != std::string::npos;
    switch (c.ending) {
      case Ending::kThrows: {
        const std::string code = std::string("code=") + handoff::error_code_name(c.code) + " ";
        if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 3) problem = "no handoff::Error was thrown";
        else if (out.find(code) == std::string::npos) problem = "wrong error code";
        else if (!has_message) problem = "wrong error message";
        break;
      }
      case Ending::kAborts:
        if (!WIFSIGNALED(r.status) || WTERMSIG(r.status) != SIGABRT) problem = "the child did not abort";
        else if (!has_message) problem = "wrong abort message";
        break;
      case Ending::kReturns:
        if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0) problem = "the child did not return normally";
        else if (!has_message) problem = "wrong result";
        break;
    }
  }
  if (problem.empty()) {
    std::printf("PASS %s (%s)\n", c.name, describe_ending(r).c_str());
    return 0;
  }
  std::printf("FAIL %s: %s\n  expected: %s\n  got:      %s\n  output:\n%s\n", c.name, problem.c_str(),
              expected_ending(c).c_str(), describe_ending(r).c_str(), out.c_str());
  return 1;
}

int usage() {
  std::fprintf(stderr, "usage: misuse_suite CASE | --all | --list   (internal: --child CASE)\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  const std::string_view arg = argv[1];
  if (arg == "--list") {
    for (const Case& c : registry()) std::printf("%s\n", c.name);
    return 0;
  }
  if (arg == "--child" && argc == 3) {
    const Case* c = find_case(argv[2]);
    if (c == nullptr) return usage();
    run_child(*c);
  }
  if (arg == "--help" || arg == "-h") {
    usage();
    return 0;
  }
  const std::string self = "/proc/self/exe";
  if (arg == "--all") {
    int failed = 0, skipped = 0;
    for (const Case& c : registry()) {
      const int verdict = judge(c, spawn(self.c_str(), c));
      failed += verdict == 1;
      skipped += verdict == 77;
    }
    std::printf("misuse suite: %zu cases, %zu passed, %d failed, %d skipped\n", registry().size(),
                registry().size() - static_cast<std::size_t>(failed + skipped), failed, skipped);
    return failed == 0 ? 0 : 1;
  }
  const Case* c = find_case(arg);
  if (c == nullptr) {
    std::fprintf(stderr, "misuse_suite: no case named '%s' (see --list)\n", argv[1]);
    return 2;
  }
  return judge(*c, spawn(self.c_str(), *c));
}
