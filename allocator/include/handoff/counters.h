// One table of counters (STYLE.md 15), like the tunables table
// (tunables.h): each counter of a counters struct is named once, with its
// member, its JSON key, its label in the text dump and a help line. The
// accumulation (+=, -=), the JSON writer and the text writer all iterate the
// table, so a counter added to the table appears in all of them, and one
// left out of it appears in none (a test checks the table covers the struct).
#pragma once

#include <cstddef>
#include <cstdint>
#include <ostream>
#include <span>

namespace handoff {

template <class Counters>
struct CounterSpec {
  const char* name;  // JSON key
  std::uint64_t Counters::*field;
  const char* label;  // in the text dump
  const char* help;
};

template <class Counters>
void add_counters(Counters& to, const Counters& from, std::span<const CounterSpec<Counters>> table) noexcept {
  for (const auto& spec : table) to.*spec.field += from.*spec.field;
}

template <class Counters>
void subtract_counters(Counters& to, const Counters& from, std::span<const CounterSpec<Counters>> table) noexcept {
  for (const auto& spec : table) to.*spec.field -= from.*spec.field;
}

// "name":value pairs separated by commas, without braces, so a writer can
// put them into an object of its own.
template <class Counters>
void counters_json_fields(std::ostream& out, const Counters& counters, std::span<const CounterSpec<Counters>> table) {
  const char* sep = "";
  for (const auto& spec : table) {
    out << sep << "\"" << spec.name << "\":" << counters.*spec.field;
    sep = ",";
  }
}

// "label value" pairs separated by ", ", `per_line` to a line, each line
// starting with `indent` and ending with a newline.
template <class Counters>
void counters_text(std::ostream& out, const Counters& counters, std::span<const CounterSpec<Counters>> table,
                   const char* indent = "  ", std::size_t per_line = 6) {
  std::size_t on_line = 0;
  for (const auto& spec : table) {
    out << (on_line == 0 ? indent : ", ") << spec.label << " " << counters.*spec.field;
    if (++on_line == per_line) {
      out << "\n";
      on_line = 0;
    }
  }
  if (on_line != 0) out << "\n";
}

}  // namespace handoff
