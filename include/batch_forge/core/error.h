// Typed errors. Every failure a user can cause (a bad file, a bad config, a bad request) is an
// Error whose text names the component, the object and the rule that was broken:
//   [safetensors] model.st: tensor 'layers.0.w' ends at byte 9000 but the data section has 8192
// The library never exits or aborts on input; it throws Error and the caller decides.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace bf {

enum class ErrorCode {
  kInvalidArgument,    // a caller passed something malformed (CLI flag, request field)
  kInvalidFile,        // a file breaks its format's rules
  kUnsupported,        // well-formed, but this build cannot handle it (newer format, unknown family)
  kNotFound,           // a named object (file, tensor, model) does not exist
  kIo,                 // the operating system refused (open, mmap, read)
  kResourceExhausted,  // a fixed pool or queue is full (KV pages, request queue)
  kUnavailable,        // the component is shutting down and takes no more work
  kInternal,           // an invariant of our own code broke: a bug, never the user's fault
};

std::string_view error_code_name(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, std::string_view component, std::string_view message);

  ErrorCode code() const { return code_; }
  const std::string& component() const { return component_; }
  // The message without the "[component] " prefix.
  const std::string& message() const { return message_; }

 private:
  ErrorCode code_;
  std::string component_;
  std::string message_;
};

// Concatenates anything that has an ostream operator: cat("tensor '", name, "' has ", n, " dims").
template <typename... Args>
std::string cat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}

[[noreturn]] void throw_check_failure(const char* expr, const char* file, int line, const std::string& what);

}  // namespace bf

// Always-on invariant check (also in release builds). For our own invariants only: input from a
// user is validated with a typed Error that says what was expected, not with BF_CHECK.
#define BF_CHECK(cond, ...)                                                         \
  do {                                                                              \
    if (!(cond)) [[unlikely]]                                                       \
      ::bf::throw_check_failure(#cond, __FILE__, __LINE__, ::bf::cat(__VA_ARGS__)); \
  } while (0)
