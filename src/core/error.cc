#include "batch_forge/core/error.h"

namespace bf {

std::string_view error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "invalid argument";
    case ErrorCode::kInvalidFile: return "invalid file";
    case ErrorCode::kUnsupported: return "unsupported";
    case ErrorCode::kNotFound: return "not found";
    case ErrorCode::kIo: return "i/o error";
    case ErrorCode::kResourceExhausted: return "resource exhausted";
    case ErrorCode::kUnavailable: return "unavailable";
    case ErrorCode::kInternal: return "internal error";
  }
  return "unknown error";
}

Error::Error(ErrorCode code, std::string_view component, std::string_view message)
    : std::runtime_error(cat("[", component, "] ", message)), code_(code), component_(component), message_(message) {}

void throw_check_failure(const char* expr, const char* file, int line, const std::string& what) {
  throw Error(ErrorCode::kInternal, "check",
              cat(file, ":", line, ": '", expr, "' failed", what.empty() ? "" : ": ", what));
}

}  // namespace bf
