// An OpenAI-style error answer: an HTTP status and the body
//   {"error": {"message": ..., "type": ..., "param": ..., "code": ...}}
// Thrown by the request parsers and the routes; the connection turns it into the response.
#pragma once

#include <exception>
#include <string>

#include "batch_forge/core/error.h"

namespace bf::server {

struct ApiError : std::exception {
  ApiError(int status, std::string message, std::string param = {}, std::string code = {}, std::string type = {})
      : status(status),
        message(std::move(message)),
        param(std::move(param)),
        code(std::move(code)),
        type(type.empty() ? default_type(status) : std::move(type)) {}

  const char* what() const noexcept override { return message.c_str(); }

  // "invalid_request_error" for 4xx, "server_error" for 5xx (OpenAI's names).
  static std::string default_type(int status) { return status >= 500 ? "server_error" : "invalid_request_error"; }

  int status;
  std::string message;
  std::string param;  // the request field at fault; empty: null
  std::string code;   // a machine-readable reason ("model_not_found"); empty: null
  std::string type;
};

// The body of an ApiError, as JSON text.
std::string error_body(const ApiError& error);

// A library Error as an answer. kInvalidArgument and kUnsupported are the client's (400),
// kNotFound 404, kResourceExhausted 429 (a full queue), kUnavailable 503 (shutting down);
// anything else is ours (500).
ApiError api_error_from(const Error& error);

}  // namespace bf::server
