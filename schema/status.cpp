#include "schema/status.h"

namespace kv {

const char* CodeName(Status::Code code) {
  switch (code) {
    case Status::Code::kOk: return "OK";
    case Status::Code::kNotFound: return "NotFound";
    case Status::Code::kInvalidArgument: return "InvalidArgument";
    case Status::Code::kNotResponsible: return "NotResponsible";
    case Status::Code::kOverloaded: return "Overloaded";
    case Status::Code::kUnavailable: return "Unavailable";
    case Status::Code::kTimeout: return "Timeout";
    case Status::Code::kCorruption: return "Corruption";
    case Status::Code::kIOError: return "IOError";
  }
  return "Unknown";
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string s = CodeName(code_);
  if (!message_.empty()) {
    s += ": ";
    s += message_;
  }
  return s;
}

}  // namespace kv
