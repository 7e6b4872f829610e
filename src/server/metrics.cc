#include "server/metrics.h"

#include <charconv>
#include <cstdio>

namespace bf::server {
namespace {

class Exposition {
 public:
  void family(const char* name, const char* type, const char* help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  void sample(const std::string& name, double value) {
    char buf[32];
    const auto end = std::to_chars(buf, buf + sizeof buf, value).ptr;  // shortest text that reads back exactly
    out_ += name + ' ' + std::string(buf, end) + '\n';
  }
  void sample(const std::string& name, uint64_t value) { out_ += name + ' ' + std::to_string(value) + '\n'; }
  void sample(const std::string& name, int64_t value) { out_ += name + ' ' + std::to_string(value) + '\n'; }

  void scalar(const char* name, const char* type, const char* help, auto value) {
    family(name, type, help);
    sample(name, value);
  }

  void histogram(const std::string& name, const char* help, const LatencyHistogram& h) {
    family(name.c_str(), "histogram", help);
    for (size_t i = 0; i < LatencyHistogram::kBuckets; ++i) {
      char le[32];
      std::snprintf(le, sizeof le, "%g", LatencyHistogram::kBounds[i]);
      sample(name + "_bucket{le=\"" + le + "\"}", h.counts[i]);
    }
    sample(name + "_bucket{le=\"+Inf\"}", h.counts[LatencyHistogram::kBuckets]);
    sample(name + "_sum", h.sum);
    sample(name + "_count", h.counts[LatencyHistogram::kBuckets]);
  }

  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

}  // namespace

std::string render_metrics(const RequestManagerStats& s, const ResponseCounters& responses, int64_t open_connections) {
  Exposition e;
  e.family("batch_forge_requests_total", "counter", "Generation requests by outcome");
  e.sample("batch_forge_requests_total{outcome=\"finished\"}", s.requests_finished);
  e.sample("batch_forge_requests_total{outcome=\"cancelled\"}", s.requests_cancelled);
  e.sample("batch_forge_requests_total{outcome=\"failed\"}", s.requests_failed);
  e.sample("batch_forge_requests_total{outcome=\"rejected\"}", s.requests_rejected);
  e.scalar("batch_forge_requests_submitted_total", "counter", "Generation requests accepted into the queue",
           s.requests_submitted);

  e.family("batch_forge_http_responses_total", "counter", "HTTP responses by status code");
  for (unsigned code = 0; code < ResponseCounters::kStatuses; ++code)
    if (uint64_t n = responses.get(code))
      e.sample("batch_forge_http_responses_total{code=\"" + (code ? std::to_string(code) : "other") + "\"}", n);
  e.scalar("batch_forge_http_connections", "gauge", "Open HTTP connections", open_connections);

  e.scalar("batch_forge_queue_depth", "gauge", "Requests waiting for admission (preempted ones included)", s.queued);
  e.scalar("batch_forge_running_sequences", "gauge", "Sequences being decoded", s.running);
  e.scalar("batch_forge_kv_pages_total", "gauge", "Pages in the KV pool", s.kv_pages_total);
  e.scalar("batch_forge_kv_pages_used", "gauge", "KV pages in use (prefix-cache pages included)", s.kv_pages_used);
  e.scalar("batch_forge_kv_pages_free", "gauge", "KV pages free", s.kv_pages_free);
  e.scalar("batch_forge_kv_pages_cached", "gauge", "KV pages held only by the prefix cache (freed on demand)",
           s.kv_pages_cached);

  e.scalar("batch_forge_prompt_tokens_total", "counter", "Prompt tokens of admitted requests", s.prompt_tokens);
  e.scalar("batch_forge_generated_tokens_total", "counter", "Tokens generated", s.generated_tokens);
  e.scalar("batch_forge_prefix_cache_hit_tokens_total", "counter",
           "Prompt tokens taken from the prefix cache instead of computed", s.prefix_hit_tokens);
  e.scalar("batch_forge_preemptions_total", "counter", "Sequences preempted for KV pages (recomputed later)",
           s.preemptions);
  e.scalar("batch_forge_scheduler_steps_total", "counter", "Batched forward steps of the scheduler", s.steps);

  e.histogram("batch_forge_time_to_first_token_seconds", "From submit to the first token", s.ttft);
  e.histogram("batch_forge_inter_token_latency_seconds", "Between consecutive tokens of a request", s.inter_token);
  return e.take();
}

}  // namespace bf::server
