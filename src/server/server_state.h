// What every connection of one server shares: the manager, the limits, the counters and the
// shutdown state. Owned by Server::Impl; outlives every connection.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>

#include "batch_forge/runtime/request_manager.h"
#include "batch_forge/server/server.h"
#include "server/metrics.h"
#include "server/openai_api.h"

namespace bf::server {

struct ServerState {
  ServerState(RequestManager& manager, ServerOptions options);

  // Seeds for requests that name none: distinct per request (a fixed default would give every
  // client the same "random" text), from a counter that starts at a random point.
  uint64_t next_seed();
  // "cmpl-" / "chatcmpl-" + a per-process nonce + the handle's id: unique across restarts too.
  std::string response_id(Route route, uint64_t handle_id) const;

  // Generation responses not yet fully written; shutdown waits for them to reach zero.
  void generation_started() { active_generations.fetch_add(1); }
  void generation_ended();
  // Waits until no generation response is in flight, or until `seconds` have passed.
  bool wait_generations(double seconds);

  RequestManager& manager;
  Engine& engine;
  const ServerOptions options;
  const std::string model_id;
  const RequestLimits limits;
  const int64_t started;  // Unix seconds, the "created" of /v1/models

  ResponseCounters responses;
  std::atomic<int64_t> connections{0};
  std::atomic<bool> stopping{false};  // set at SIGINT/SIGTERM: new generation requests get 503
  std::atomic<int64_t> active_generations{0};

 private:
  std::atomic<uint64_t> seed_counter_;
  std::string id_nonce_;
  std::mutex mu_;
  std::condition_variable idle_;
};

// Compares a presented key with the configured one in time that depends only on the configured
// key's length, so response times do not reveal how much of a guess was right.
bool keys_equal(std::string_view presented, std::string_view expected);

}  // namespace bf::server
