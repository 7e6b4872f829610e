// /metrics: the RequestManager's counters and the server's own, in the Prometheus text
// exposition format (version 0.0.4). Names are listed in docs/server.md.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

#include "batch_forge/runtime/request_manager.h"

namespace bf::server {

// Responses by HTTP status, counted by the connections as they answer.
class ResponseCounters {
 public:
  void add(unsigned status) { counts_[status < counts_.size() ? status : 0].fetch_add(1, std::memory_order_relaxed); }
  uint64_t get(unsigned status) const { return counts_[status].load(std::memory_order_relaxed); }
  static constexpr unsigned kStatuses = 600;  // [100, 600) are HTTP's; 0 collects anything else

 private:
  std::array<std::atomic<uint64_t>, kStatuses> counts_{};
};

std::string render_metrics(const RequestManagerStats& stats, const ResponseCounters& responses,
                           int64_t open_connections);

}  // namespace bf::server
