// A small command-line parser for the seed system's flag style: single-dash
// multi-letter flags ("-ll INFO", "-bh host") next to GNU long ones
// ("--sync always", "--sync=always"). Every flag has help text and shows its
// default, so "-h" tells the truth. Not thread-safe; used once in main.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "schema/status.h"

namespace kv {

class FlagParser {
 public:
  FlagParser(std::string program, std::string summary);

  // names: e.g. {"-p", "--port"}. The setter gets the raw text and returns a
  // Status describing why it is invalid.
  void Add(std::vector<std::string> names, std::string value_name, std::string help,
           std::function<Status(const std::string&)> setter, std::string default_text = "");
  // A switch that takes no value.
  void AddSwitch(std::vector<std::string> names, std::string help, bool* target);

  // Typed helpers; default_text is taken from the target's current value.
  void String(std::vector<std::string> names, std::string value_name, std::string help,
              std::string* target);
  void Int(std::vector<std::string> names, std::string value_name, std::string help,
           int64_t* target, int64_t min, int64_t max);
  void Port(std::vector<std::string> names, std::string help, uint16_t* target);
  // A port whose default depends on other flags: unset until given;
  // default_text says what unset means (e.g. "control port + 1").
  void OptionalPort(std::vector<std::string> names, std::string help,
                    std::optional<uint16_t>* target, std::string default_text);
  void Choice(std::vector<std::string> names, std::string help, std::string* target,
              std::vector<std::string> choices);

  // Accept "-h"/"--help" (sets help_requested()); stops at the first positional
  // argument when stop_at_positional is set, leaving the rest positional.
  Status Parse(int argc, char** argv, bool stop_at_positional = false);
  bool help_requested() const { return help_requested_; }
  const std::vector<std::string>& positional() const { return positional_; }
  std::string Usage() const;

 private:
  struct Flag {
    std::vector<std::string> names;
    std::string value_name;  // empty for switches
    std::string help;
    std::string default_text;
    std::function<Status(const std::string&)> setter;
  };
  const Flag* Find(const std::string& name) const;

  std::string program_;
  std::string summary_;
  std::vector<Flag> flags_;
  std::vector<std::string> positional_;
  bool help_requested_ = false;
};

}  // namespace kv
