// RequestManager: many concurrent generation requests served by one engine through continuous
// batching (DESIGN.md "Runtime").
//
// Any thread submits; one scheduler thread owns the engine. Each scheduler step packs the decode
// token of every running sequence and whole chunks of new prompts, under a token budget, into one
// batched LanguageModel::forward (one GEMM per projection, not one GEMV per request), samples each
// sequence's next token with its own Sampler, streams the text, retires finished sequences and
// admits queued ones as soon as the KV pool has pages for them.
//
//   - Per-request state: a SeqState (KV pages from the engine's pool), a Sampler (its own seed),
//     a stop matcher and a streaming decoder. Nothing is allocated from the pool at submit time.
//   - Memory pressure: when a running sequence needs a page for its next token and none is free,
//     the most recently admitted sequence is preempted: its pages return to the pool and it goes
//     back to the head of the queue, to be recomputed (prompt + what it generated) once pages free
//     up. Its sampler, output and stream carry on where they were; it is never failed for it.
//   - Prefix reuse: finished sequences leave their full prompt pages in a prefix cache keyed by the
//     tokens they hold; a new request whose prompt starts with those tokens shares the pages
//     (reference counted, never written again) instead of recomputing them. Cached pages are
//     evicted, least recently used first, whenever a running or admitted sequence needs pages.
//   - Batch invariance: a request's tokens do not depend on which other requests share its steps.
//     Prompts are cut into chunks at fixed offsets (multiples of the prefill chunk), so a request
//     sees the same attention shapes alone or batched, and the engine's backend runs with
//     row-invariant matmuls (BackendOptions::batch_invariant). A preempted request recomputes its
//     tokens in different chunks: its later tokens may differ in the last bits of the logits.
//
// Handles are thread-safe. A handle's notify callback (if any) runs on the scheduler thread after
// new output and at the end; it must not block (the HTTP server posts to the connection's
// executor from it).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "batch_forge/core/error.h"
#include "batch_forge/runtime/engine.h"

namespace bf {

struct RequestManagerOptions {
  int64_t max_queue = 256;    // requests waiting for admission; one more is refused (kResourceExhausted)
  int64_t max_running = 64;   // sequences decoded together
  int64_t step_tokens = 512;  // token budget of one forward: decode tokens + prompt chunks
  bool prefix_cache = true;   // share the KV pages of prompt prefixes seen before
};

// Output a request produced since the last time it was taken.
struct StreamChunk {
  std::string text;                    // text that became final (stop strings held back and cut)
  std::vector<int32_t> tokens;         // ids sampled
  std::vector<SampledToken> logprobs;  // one per token when the request asked for logprobs
};

// Fixed-bucket latency histogram (seconds), cumulative like Prometheus's.
struct LatencyHistogram {
  static constexpr double kBounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                       0.25,  0.5,    1.0,   2.5,  5.0,   10.0, 30.0};
  static constexpr size_t kBuckets = std::size(kBounds);
  uint64_t counts[kBuckets + 1] = {};  // [i]: observations <= kBounds[i]; [kBuckets]: all
  double sum = 0;
  void observe(double seconds);
};

struct RequestManagerStats {
  int64_t queued = 0;   // waiting for admission (preempted ones included)
  int64_t running = 0;  // holding a sequence
  int64_t kv_pages_total = 0, kv_pages_used = 0, kv_pages_free = 0;
  int64_t kv_pages_cached = 0;  // held only by the prefix cache (freed on demand)
  uint64_t requests_submitted = 0, requests_finished = 0, requests_cancelled = 0, requests_failed = 0;
  uint64_t requests_rejected = 0;  // refused at submit (full queue, invalid)
  uint64_t prompt_tokens = 0, generated_tokens = 0;
  uint64_t prefix_hit_tokens = 0;  // prompt tokens taken from the prefix cache instead of computed
  uint64_t preemptions = 0;
  uint64_t steps = 0;
  LatencyHistogram ttft;         // submit → first token
  LatencyHistogram inter_token;  // between consecutive tokens of a request
};

class RequestManager;

class RequestHandle {
 public:
  enum class Poll { kChunk, kNothing, kEnded };

  uint64_t id() const { return id_; }

  // Takes the output produced so far: kChunk (chunk filled), kNothing (running, nothing new) or
  // kEnded (finished and every output taken; result() is ready). Never blocks.
  Poll poll(StreamChunk& chunk);
  // Blocks until there is output (true) or the request has ended with all output taken (false).
  bool next(StreamChunk& chunk);
  // Blocks until the end. Throws the request's error if it failed; a cancelled request returns
  // what it produced with finish_reason "cancelled".
  GenerationResult wait();
  bool finished() const;
  // The final result, valid once finished(): tokens, text (all of it), finish_reason, usage and
  // timings. Throws the request's error if it failed.
  GenerationResult result() const;
  // Ends the request at the scheduler's next step; its pages return to the pool then.
  void cancel() { cancelled_.store(true, std::memory_order_relaxed); }
  bool cancel_requested() const { return cancelled_.load(std::memory_order_relaxed); }

 private:
  friend class RequestManager;
  RequestHandle(uint64_t id, std::function<void()> notify) : id_(id), notify_(std::move(notify)) {}

  // Scheduler side.
  void push(std::string_view text, int32_t token, SampledToken* logprob);
  void finish(std::string rest, GenerationResult result, std::optional<Error> error);

  const uint64_t id_;
  const std::function<void()> notify_;
  std::atomic<bool> cancelled_{false};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  StreamChunk pending_;
  bool has_pending_ = false;
  bool finished_ = false;
  GenerationResult result_;
  std::optional<Error> error_;
};

class RequestManager {
 public:
  // Starts the scheduler thread. The engine must outlive the manager and is used only by it.
  explicit RequestManager(Engine& engine, RequestManagerOptions options = {});
  ~RequestManager();  // shutdown(false)
  RequestManager(const RequestManager&) = delete;
  RequestManager& operator=(const RequestManager&) = delete;

  // Queues a request. Checked here, before anything is queued: throws Error(kInvalidArgument)
  // for an empty prompt, a prompt that leaves no room to generate in the context (naming both
  // numbers), a prompt the KV pool could never hold, max_tokens < 1, out-of-range sampling
  // parameters or stop strings without a tokenizer; Error(kResourceExhausted, "queue") when
  // max_queue requests are already waiting; Error(kUnavailable) after shutdown().
  std::shared_ptr<RequestHandle> submit(GenerationRequest request, std::function<void()> notify = {});

  // Stops accepting. drain: queued and running requests finish; else they end "cancelled" at the
  // next step. Returns when the scheduler thread has stopped and every page is back in the pool.
  void shutdown(bool drain);

  RequestManagerStats stats() const;
  const RequestManagerOptions& options() const { return options_; }
  Engine& engine() { return engine_; }

 private:
  struct Sequence;
  struct PrefixEntry;

  void run();
  void admit();
  void step();
  bool make_room(int64_t pages);
  void preempt(size_t index);
  void retire(size_t index, const char* reason, std::optional<Error> error = {});
  void cache_prefix(Sequence& seq);
  void evict_prefix_entry();
  void publish_gauges();

  Engine& engine_;
  const RequestManagerOptions options_;
  std::atomic<uint64_t> next_id_{1};

  mutable std::mutex mu_;  // guards queue_, stopping_, drain_, stats_ (the scheduler's own state is its alone)
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Sequence>> queue_;
  bool stopping_ = false, drain_ = false;
  RequestManagerStats stats_;

  // Scheduler thread only.
  std::vector<std::shared_ptr<Sequence>> running_;
  std::vector<std::unique_ptr<PrefixEntry>> prefixes_;
  uint64_t prefix_clock_ = 0;
  std::vector<float> logits_;
  std::vector<int32_t> cache_refs_;  // publish_gauges' scratch

  std::thread thread_;
};

}  // namespace bf
