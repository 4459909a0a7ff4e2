#include "schema/flags.h"

#include <algorithm>
#include <sstream>

namespace kv {

FlagParser::FlagParser(std::string program, std::string summary)
    : program_(std::move(program)), summary_(std::move(summary)) {}

void FlagParser::Add(std::vector<std::string> names, std::string value_name, std::string help,
                     std::function<Status(const std::string&)> setter, std::string default_text) {
  flags_.push_back(Flag{std::move(names), std::move(value_name), std::move(help),
                        std::move(default_text), std::move(setter)});
}

void FlagParser::AddSwitch(std::vector<std::string> names, std::string help, bool* target) {
  flags_.push_back(Flag{std::move(names), "", std::move(help), "", [target](const std::string&) {
                          *target = true;
                          return Status::Ok();
                        }});
}

void FlagParser::String(std::vector<std::string> names, std::string value_name, std::string help,
                        std::string* target) {
  Add(
      std::move(names), std::move(value_name), std::move(help),
      [target](const std::string& v) {
        *target = v;
        return Status::Ok();
      },
      *target);
}

void FlagParser::Int(std::vector<std::string> names, std::string value_name, std::string help,
                     int64_t* target, int64_t min, int64_t max) {
  Add(
      std::move(names), std::move(value_name), std::move(help),
      [target, min, max](const std::string& v) {
        size_t used = 0;
        int64_t n = 0;
        try {
          n = std::stoll(v, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (used == 0 || used != v.size()) {
          return Status::InvalidArgument("'" + v + "' is not a whole number");
        }
        if (n < min || n > max) {
          return Status::InvalidArgument("'" + v + "' is out of range [" + std::to_string(min) +
                                         ", " + std::to_string(max) + "]");
        }
        *target = n;
        return Status::Ok();
      },
      std::to_string(*target));
}

namespace {

Result<uint16_t> ParsePort(const std::string& v) {
  size_t used = 0;
  long n = -1;
  try {
    n = std::stol(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != v.size() || n < 0 || n > 65535) {
    return Status::InvalidArgument("'" + v + "' is not a port number (0-65535)");
  }
  return static_cast<uint16_t>(n);
}

}  // namespace

void FlagParser::Port(std::vector<std::string> names, std::string help, uint16_t* target) {
  Add(
      std::move(names), "PORT", std::move(help),
      [target](const std::string& v) {
        auto port = ParsePort(v);
        if (!port.ok()) return port.status();
        *target = *port;
        return Status::Ok();
      },
      std::to_string(*target));
}

void FlagParser::OptionalPort(std::vector<std::string> names, std::string help,
                              std::optional<uint16_t>* target, std::string default_text) {
  Add(
      std::move(names), "PORT", std::move(help),
      [target](const std::string& v) {
        auto port = ParsePort(v);
        if (!port.ok()) return port.status();
        *target = *port;
        return Status::Ok();
      },
      std::move(default_text));
}

void FlagParser::Choice(std::vector<std::string> names, std::string help, std::string* target,
                        std::vector<std::string> choices) {
  std::string value_name;
  for (const auto& c : choices) value_name += (value_name.empty() ? "" : "|") + c;
  Add(
      std::move(names), value_name, std::move(help),
      [target, choices, value_name](const std::string& v) {
        for (const auto& c : choices) {
          if (v == c || [&] {
                std::string a = v, b = c;
                std::transform(a.begin(), a.end(), a.begin(), ::tolower);
                std::transform(b.begin(), b.end(), b.begin(), ::tolower);
                return a == b;
              }()) {
            *target = c;
            return Status::Ok();
          }
        }
        return Status::InvalidArgument("'" + v + "' is not one of " + value_name);
      },
      *target);
}

const FlagParser::Flag* FlagParser::Find(const std::string& name) const {
  for (const auto& f : flags_) {
    if (std::find(f.names.begin(), f.names.end(), name) != f.names.end()) return &f;
  }
  return nullptr;
}

Status FlagParser::Parse(int argc, char** argv, bool stop_at_positional) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      help_requested_ = true;
      continue;
    }
    if (arg == "--") {
      for (++i; i < argc; ++i) positional_.push_back(argv[i]);
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      positional_.push_back(arg);
      if (stop_at_positional) {
        for (++i; i < argc; ++i) positional_.push_back(argv[i]);
        break;
      }
      continue;
    }
    std::string name = arg, value;
    bool has_inline = false;
    if (arg.rfind("--", 0) == 0) {
      auto eq = arg.find('=');
      if (eq != std::string::npos) {
        name = arg.substr(0, eq);
        value = arg.substr(eq + 1);
        has_inline = true;
      }
    }
    const Flag* flag = Find(name);
    if (flag == nullptr) return Status::InvalidArgument("unknown flag " + name + " (see -h)");
    if (flag->value_name.empty()) {
      if (has_inline) return Status::InvalidArgument(name + " takes no value");
      Status s = flag->setter("");
      if (!s.ok()) return s;
      continue;
    }
    if (!has_inline) {
      if (i + 1 >= argc)
        return Status::InvalidArgument(name + " needs a value " + flag->value_name);
      value = argv[++i];
    }
    Status s = flag->setter(value);
    if (!s.ok()) return Status::InvalidArgument(name + ": " + s.message());
  }
  return Status::Ok();
}

std::string FlagParser::Usage() const {
  std::ostringstream out;
  out << "usage: " << program_ << " [flags]\n" << summary_ << "\n\nflags:\n";
  for (const auto& f : flags_) {
    std::string left = "  ";
    for (size_t i = 0; i < f.names.size(); ++i) left += (i ? ", " : "") + f.names[i];
    if (!f.value_name.empty()) left += " " + f.value_name;
    out << left;
    if (left.size() < 30) {
      out << std::string(30 - left.size(), ' ');
    } else {
      out << "\n" << std::string(30, ' ');
    }
    out << f.help;
    if (!f.default_text.empty()) out << " (default: " << f.default_text << ")";
    out << "\n";
  }
  out << "  -h, --help                  show this help and exit\n";
  return out.str();
}

}  // namespace kv
