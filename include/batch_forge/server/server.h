// The OpenAI-compatible HTTP server (DESIGN.md "Server"; docs/server.md): /v1/completions,
// /v1/chat/completions (both with SSE streaming), /v1/models, /health and /metrics, over a
// RequestManager that owns the engine.
//
// Event-driven on Boost.Asio + Boost.Beast. A small pool of I/O threads runs every socket; they
// parse JSON, tokenize and render the chat template (text only), submit to the RequestManager and
// write what the request handles produce. They never run model code: the scheduler thread does,
// and its notify callbacks only post to the connection's strand.
//
// Safe by default: binds 127.0.0.1, optional bearer key (compared in constant time), limits on
// body size (413), prompt tokens and max_tokens (400 naming the limit), 429 when the manager's
// queue is full, and a client that goes away mid-request cancels it so its pages return to the
// pool at the scheduler's next step.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "batch_forge/runtime/request_manager.h"

namespace bf::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;    // 0: any free port (Server::port() tells which)
  std::string api_key;     // empty: no authentication
  std::string model_name;  // the id clients name in "model"; empty: the model file's stem
  int io_threads = 1;
  int64_t max_body_bytes = int64_t{1} << 20;
  int64_t max_prompt_tokens = 0;  // 0: the model's context length - 1
  int64_t max_tokens_limit = 0;   // largest max_tokens a request may ask for; 0: the context length
  // After SIGINT/SIGTERM: how long running and queued requests may take to finish before they
  // are cancelled. A second signal cancels them at once.
  double drain_seconds = 60;
};

class Server {
 public:
  // Binds and listens (Error(kIo, "server") naming the address when that fails); serves nothing
  // until run(). The manager must outlive the server.
  Server(RequestManager& manager, ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  uint16_t port() const;
  // "http://127.0.0.1:8080" (IPv6 hosts in brackets).
  std::string url() const;

  // Serves on the I/O threads until SIGINT/SIGTERM or stop(); then stops accepting, lets running
  // and queued requests finish (up to drain_seconds), shuts the manager down, flushes the last
  // responses and returns. The manager takes no requests afterwards.
  void run();
  // Asks run() to stop as a signal would. Thread-safe.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace bf::server
