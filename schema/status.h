// Status and Result<T>: how errors cross module boundaries in every process.
// A Status is a code with meaning for the caller plus a human-readable message;
// "not found" is a Status, never an exception. Thread-compatible value types.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace kv {

class [[nodiscard]] Status {
 public:
  enum class Code {
    kOk = 0,
    kNotFound,         // the key or object does not exist
    kInvalidArgument,  // the caller sent something malformed or out of limits
    kNotResponsible,   // this node does not own the key in its ring version
    kOverloaded,       // back off, do not retry at once
    kUnavailable,      // peer unreachable or not serving: reconnect, then retry
    kTimeout,          // no answer within the deadline; outcome unknown
    kCorruption,       // stored or received data failed validation
    kIOError,          // the operating system or storage failed
  };

  Status() = default;
  static Status Ok() { return Status(); }
  static Status NotFound(std::string msg) { return Status(Code::kNotFound, std::move(msg)); }
  static Status InvalidArgument(std::string msg) {
    return Status(Code::kInvalidArgument, std::move(msg));
  }
  static Status NotResponsible(std::string msg) {
    return Status(Code::kNotResponsible, std::move(msg));
  }
  static Status Overloaded(std::string msg) { return Status(Code::kOverloaded, std::move(msg)); }
  static Status Unavailable(std::string msg) {
    return Status(Code::kUnavailable, std::move(msg));
  }
  static Status Timeout(std::string msg) { return Status(Code::kTimeout, std::move(msg)); }
  static Status Corruption(std::string msg) { return Status(Code::kCorruption, std::move(msg)); }
  static Status IOError(std::string msg) { return Status(Code::kIOError, std::move(msg)); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  bool IsNotFound() const { return code_ == Code::kNotFound; }
  bool IsInvalidArgument() const { return code_ == Code::kInvalidArgument; }
  bool IsTimeout() const { return code_ == Code::kTimeout; }

  // "InvalidArgument: key is empty"; "OK" for success.
  std::string ToString() const;

 private:
  Status(Code code, std::string msg) : code_(code), message_(std::move(msg)) {}
  Code code_ = Code::kOk;
  std::string message_;
};

const char* CodeName(Status::Code code);

// Either a value or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT
  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() { return *value_; }
  const T& operator*() const { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace kv
