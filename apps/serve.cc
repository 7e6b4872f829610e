// batch_forge serve: the OpenAI-compatible HTTP server (docs/server.md) over one model file.
// Opens the engine, starts the RequestManager's scheduler, listens, and on SIGINT/SIGTERM lets
// running requests finish before it exits 0.
#include <cstdio>

#include "batch_forge/runtime/engine.h"
#include "batch_forge/runtime/request_manager.h"
#include "batch_forge/server/server.h"
#include "commands.h"

namespace bf::app {

int run_serve(const ServeOptions& options) {
  EngineOptions engine_opts = engine_options(options.engine);
  // A request's tokens must not depend on which other requests share its batch.
  engine_opts.backend_options.batch_invariant = true;
  auto engine = Engine::open(options.model, engine_opts);

  RequestManagerOptions manager_options;
  manager_options.max_queue = options.max_queue;
  manager_options.max_running = options.max_running;
  RequestManager manager(*engine, manager_options);

  server::ServerOptions server_options;
  server_options.host = options.host;
  server_options.port = static_cast<uint16_t>(options.port);
  server_options.api_key = options.api_key;
  server_options.model_name = options.model_name;
  server_options.io_threads = options.io_threads;
  server_options.max_body_bytes = parse_size(options.max_body, "--max-body");
  server_options.max_prompt_tokens = options.max_prompt_tokens;
  server_options.max_tokens_limit = options.max_tokens_limit;
  server_options.drain_seconds = options.drain_seconds;
  server::Server server(manager, server_options);

  const KvPool& pool = engine->kv_pool();
  std::printf("batch_forge serve: %s\n", engine->model().describe().c_str());
  std::printf("batch_forge serve: KV pool %lld pages of %lld tokens; up to %lld running, %lld queued%s\n",
              static_cast<long long>(pool.n_pages()), static_cast<long long>(pool.page_size()),
              static_cast<long long>(options.max_running), static_cast<long long>(options.max_queue),
              options.api_key.empty() ? "" : "; API key required");
  // Tests and scripts wait for this line (with --port 0 it is the only way to learn the port).
  std::printf("batch_forge serve: listening on %s\n", server.url().c_str());
  std::fflush(stdout);

  server.run();
  std::printf("batch_forge serve: stopped\n");
  return 0;
}

}  // namespace bf::app
