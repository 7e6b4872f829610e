#include "batch_forge/runtime/request_manager.h"

#include <algorithm>
#include <chrono>

#include "batch_forge/core/log.h"
#include "runtime/token_output.h"

namespace bf {
namespace {

using Clock = std::chrono::steady_clock;
double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

void LatencyHistogram::observe(double s) {
  for (size_t i = 0; i < kBuckets; ++i)
    if (s <= kBounds[i]) ++counts[i];
  ++counts[kBuckets];
  sum += s;
}

// ---- RequestHandle ---------------------------------------------------------------------------

RequestHandle::Poll RequestHandle::poll(StreamChunk& chunk) {
  std::lock_guard lock(mu_);
  if (has_pending_) {
    chunk = std::move(pending_);
    pending_ = {};
    has_pending_ = false;
    return Poll::kChunk;
  }
  return finished_ ? Poll::kEnded : Poll::kNothing;
}

bool RequestHandle::next(StreamChunk& chunk) {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return has_pending_ || finished_; });
  if (!has_pending_) return false;
  chunk = std::move(pending_);
  pending_ = {};
  has_pending_ = false;
  return true;
}

GenerationResult RequestHandle::wait() {
  {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return finished_; });
  }
  return result();
}

bool RequestHandle::finished() const {
  std::lock_guard lock(mu_);
  return finished_;
}

GenerationResult RequestHandle::result() const {
  std::lock_guard lock(mu_);
  BF_CHECK(finished_, "result() of request ", id_, " before it finished");
  if (error_) throw *error_;
  return result_;
}

void RequestHandle::push(std::string_view text, int32_t token, SampledToken* logprob) {
  {
    std::lock_guard lock(mu_);
    pending_.text += text;
    pending_.tokens.push_back(token);
    if (logprob) pending_.logprobs.push_back(std::move(*logprob));
    has_pending_ = true;
  }
  cv_.notify_all();
  if (notify_) notify_();
}

void RequestHandle::finish(std::string rest, GenerationResult result, std::optional<Error> error) {
  {
    std::lock_guard lock(mu_);
    if (!rest.empty()) {  // text held back until the end (a possible stop string, a partial character)
      pending_.text += rest;
      has_pending_ = true;
    }
    result_ = std::move(result);
    error_ = std::move(error);
    finished_ = true;
  }
  cv_.notify_all();
  if (notify_) notify_();
}

// ---- Sequence and prefix cache -----------------------------------------------------------------

struct RequestManager::Sequence {
  Sequence(Engine& engine, std::shared_ptr<RequestHandle> h, GenerationRequest r, int64_t max_new)
      : handle(std::move(h)),
        request(std::move(r)),
        tokens(request.prompt),
        state(engine.kv_pool()),
        sampler(request.sampling),
        output(engine, request, max_new) {}

  std::shared_ptr<RequestHandle> handle;
  GenerationRequest request;
  std::vector<int32_t> tokens;  // prompt, then every sampled token; K/V held for state.n_tokens()
  SeqState state;
  Sampler sampler;
  TokenOutput output;
  uint64_t admitted = 0;  // admission order: the youngest is preempted first
  bool cached = false;    // its prompt pages are in the prefix cache
  Clock::time_point submitted, first_token, last_token;
};

// Pages of a token prefix that no sequence writes any more: `state` shares them (full pages only).
struct RequestManager::PrefixEntry {
  std::vector<int32_t> tokens;  // state.n_tokens() tokens, a multiple of the page size
  SeqState state;
  uint64_t used = 0;  // prefix_clock_ at the last hit: the least recently used goes first
};

// ---- RequestManager --------------------------------------------------------------------------

RequestManager::RequestManager(Engine& engine, RequestManagerOptions options)
    : engine_(engine), options_(options) {
  if (options_.max_queue < 1 || options_.max_running < 1 || options_.step_tokens < 1)
    throw Error(ErrorCode::kInvalidArgument, "requests",
                cat("max_queue, max_running and step_tokens must be >= 1, got ", options_.max_queue, ", ",
                    options_.max_running, ", ", options_.step_tokens));
  stats_.kv_pages_total = engine_.kv_pool().n_pages();
  stats_.kv_pages_free = engine_.kv_pool().free_pages();
  thread_ = std::thread([this] { run(); });
}

RequestManager::~RequestManager() { shutdown(false); }

std::shared_ptr<RequestHandle> RequestManager::submit(GenerationRequest request, std::function<void()> notify) {
  auto reject = [&](ErrorCode code, const std::string& message) -> std::shared_ptr<RequestHandle> {
    std::lock_guard lock(mu_);
    ++stats_.requests_rejected;
    throw Error(code, "requests", message);
  };
  const int64_t n = static_cast<int64_t>(request.prompt.size()), context = engine_.context_length();
  const int64_t vocab = engine_.model_vocab_size();
  if (n == 0) return reject(ErrorCode::kInvalidArgument, "the prompt is empty");
  if (n >= context)
    return reject(ErrorCode::kInvalidArgument, cat("prompt of ", n, " tokens does not fit the context of ", context,
                                                   " tokens with room to generate"));
  for (int64_t i = 0; i < n; ++i)
    if (request.prompt[static_cast<size_t>(i)] < 0 || request.prompt[static_cast<size_t>(i)] >= vocab)
      return reject(ErrorCode::kInvalidArgument, cat("prompt token ", i, " is id ", request.prompt[static_cast<size_t>(i)],
                                                     ", outside the vocabulary [0, ", vocab, ")"));
  if (request.max_tokens < 1)
    return reject(ErrorCode::kInvalidArgument, cat("max_tokens must be >= 1, got ", request.max_tokens));
  const KvPool& pool = engine_.kv_pool();
  const int64_t max_new = std::min(request.max_tokens, context - n);
  // The request must fit the pool alone, to its last token (else it could never finish).
  const int64_t pages = (n + max_new + pool.page_size() - 1) / pool.page_size();
  if (pages > pool.n_pages())
    return reject(ErrorCode::kInvalidArgument,
                  cat("prompt of ", n, " tokens plus max_tokens ", max_new, " needs ", pages, " KV pages; the pool has ",
                      pool.n_pages(), " (raise --kv-memory or lower max_tokens)"));
  std::shared_ptr<Sequence> seq;
  try {
    request.sampling.validate();
    auto handle = std::shared_ptr<RequestHandle>(new RequestHandle(next_id_++, std::move(notify)));
    seq = std::make_shared<Sequence>(engine_, std::move(handle), std::move(request), max_new);
  } catch (const Error& e) {
    return reject(e.code(), e.message());
  }
  seq->submitted = Clock::now();
  {
    std::lock_guard lock(mu_);
    if (stopping_) {
      ++stats_.requests_rejected;
      throw Error(ErrorCode::kUnavailable, "requests", "shutting down: no new requests are taken");
    }
    if (static_cast<int64_t>(queue_.size()) >= options_.max_queue) {
      ++stats_.requests_rejected;
      throw Error(ErrorCode::kResourceExhausted, "requests",
                  cat("the queue is full (", options_.max_queue, " requests waiting); retry later"));
    }
    queue_.push_back(seq);
    ++stats_.requests_submitted;
    stats_.prompt_tokens += static_cast<uint64_t>(seq->tokens.size());
    stats_.queued = static_cast<int64_t>(queue_.size());
  }
  wake_.notify_one();
  return seq->handle;
}

void RequestManager::shutdown(bool drain) {
  {
    std::lock_guard lock(mu_);
    if (!stopping_) drain_ = drain;
    else if (!drain) drain_ = false;  // a later shutdown(false) cuts a drain short
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

RequestManagerStats RequestManager::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void RequestManager::run() {
  for (;;) {
    bool stop_now = false;
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty() || !running_.empty(); });
      if (stopping_ && (!drain_ || (queue_.empty() && running_.empty()))) stop_now = true;
    }
    if (stop_now) break;
    try {
      step();
    } catch (const std::exception& e) {
      // A failure outside any one request (it should not happen): fail what is running, go on.
      BF_LOG(kError, "[requests] scheduler step failed: ", e.what());
      const Error err(ErrorCode::kInternal, "requests", e.what());
      while (!running_.empty()) retire(running_.size() - 1, "error", err);
    }
  }
  // Whatever is left ends cancelled; every page goes back to the pool.
  std::deque<std::shared_ptr<Sequence>> left;
  {
    std::lock_guard lock(mu_);
    left.swap(queue_);
  }
  while (!running_.empty()) retire(running_.size() - 1, "cancelled");
  for (auto& seq : left) {
    seq->state.release();
    std::string rest = seq->output.finish("cancelled");
    seq->handle->finish(std::move(rest), std::move(seq->output.result()), std::nullopt);
    std::lock_guard lock(mu_);
    ++stats_.requests_cancelled;
  }
  prefixes_.clear();
  publish_gauges();
}

// Cached prefix pages are freed, least recently used first, until `pages` are free. Returns
// whether they are.
bool RequestManager::make_room(int64_t pages) {
  KvPool& pool = engine_.kv_pool();
  while (pool.free_pages() < pages && !prefixes_.empty()) evict_prefix_entry();
  return pool.free_pages() >= pages;
}

void RequestManager::evict_prefix_entry() {
  auto oldest = std::min_element(prefixes_.begin(), prefixes_.end(),
                                 [](const auto& a, const auto& b) { return a->used < b->used; });
  prefixes_.erase(oldest);
}

void RequestManager::cache_prefix(Sequence& seq) {
  const int64_t ps = engine_.kv_pool().page_size();
  const int64_t n = seq.state.n_tokens() / ps * ps;
  if (n == 0) return;
  const auto begin = seq.tokens.begin();
  // An entry this one covers is redundant (its pages are a prefix of these); one that covers this
  // one makes it redundant.
  for (size_t i = 0; i < prefixes_.size();) {
    PrefixEntry& e = *prefixes_[i];
    const auto len = static_cast<int64_t>(e.tokens.size());
    if (len >= n && std::equal(begin, begin + n, e.tokens.begin())) {
      e.used = ++prefix_clock_;
      return;
    }
    if (len < n && std::equal(e.tokens.begin(), e.tokens.end(), begin)) {
      prefixes_.erase(prefixes_.begin() + static_cast<std::ptrdiff_t>(i));
      continue;
    }
    ++i;
  }
  auto e = std::make_unique<PrefixEntry>(PrefixEntry{std::vector<int32_t>(begin, begin + n), seq.state.share_prefix(n),
                                                     ++prefix_clock_});
  prefixes_.push_back(std::move(e));
}

// Queued requests start, in order, while there is room: a free running slot and KV pages for all
// the tokens they will compute now (cached prefix pages shared, stale cache entries evicted).
void RequestManager::admit() {
  KvPool& pool = engine_.kv_pool();
  const int64_t ps = pool.page_size();
  for (;;) {
    std::shared_ptr<Sequence> seq;
    {
      std::lock_guard lock(mu_);
      if (queue_.empty() || static_cast<int64_t>(running_.size()) >= options_.max_running) return;
      seq = queue_.front();
    }
    // Prefix reuse: the longest cached run of whole pages that leaves a token to compute.
    const auto n = static_cast<int64_t>(seq->tokens.size());
    PrefixEntry* best = nullptr;
    int64_t best_len = 0;
    if (options_.prefix_cache) {
      for (auto& e : prefixes_) {
        const int64_t limit = std::min<int64_t>(static_cast<int64_t>(e->tokens.size()), (n - 1) / ps * ps);
        int64_t len = 0;
        while (len < limit && e->tokens[static_cast<size_t>(len)] == seq->tokens[static_cast<size_t>(len)]) ++len;
        len = len / ps * ps;
        if (len > best_len) best = e.get(), best_len = len;
      }
    }
    if (best) {
      best->used = ++prefix_clock_;
      seq->state = best->state.share_prefix(best_len);
    }
    const int64_t need = seq->state.pages_needed(n - seq->state.n_tokens());
    if (!make_room(need)) {
      seq->state.release();  // waits at the head of the queue for pages
      return;
    }
    seq->state.reserve(n - seq->state.n_tokens());
    {
      std::lock_guard lock(mu_);
      queue_.pop_front();
      stats_.prefix_hit_tokens += static_cast<uint64_t>(best_len);
      stats_.queued = static_cast<int64_t>(queue_.size());
    }
    seq->admitted = ++prefix_clock_;
    running_.push_back(std::move(seq));
  }
}

void RequestManager::preempt(size_t index) {
  std::shared_ptr<Sequence> seq = running_[index];
  running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(index));
  seq->state.release();
  seq->cached = false;
  std::lock_guard lock(mu_);
  queue_.push_front(std::move(seq));
  ++stats_.preemptions;
  stats_.queued = static_cast<int64_t>(queue_.size());
}

void RequestManager::retire(size_t index, const char* reason, std::optional<Error> error) {
  std::shared_ptr<Sequence> seq = running_[index];
  running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(index));
  const std::string rest = seq->output.finish(reason);
  if (options_.prefix_cache && !error && seq->state.n_tokens() > 0) cache_prefix(*seq);
  seq->state.release();
  GenerationResult result = std::move(seq->output.result());
  if (!result.tokens.empty()) {
    result.ttft_seconds = seconds(seq->first_token - seq->submitted);
    result.decode_seconds = seconds(seq->last_token - seq->first_token);
  }
  publish_gauges();
  {
    std::lock_guard lock(mu_);
    if (error) ++stats_.requests_failed;
    else if (result.finish_reason == std::string_view("cancelled")) ++stats_.requests_cancelled;
    else ++stats_.requests_finished;
  }
  seq->handle->finish(error ? std::string() : rest, std::move(result), std::move(error));
}

void RequestManager::step() {
  KvPool& pool = engine_.kv_pool();
  for (size_t i = running_.size(); i-- > 0;)
    if (running_[i]->handle->cancel_requested()) retire(i, "cancelled");
  std::vector<std::shared_ptr<Sequence>> dropped;  // cancelled while queued: they hold no pages
  {
    std::lock_guard lock(mu_);
    for (auto it = queue_.begin(); it != queue_.end();) {
      if ((*it)->handle->cancel_requested()) {
        dropped.push_back(std::move(*it));
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& seq : dropped) {
    seq->state.release();
    running_.push_back(std::move(seq));
    retire(running_.size() - 1, "cancelled");
  }
  admit();
  if (running_.empty()) return;

  // Every sequence with one token to feed decodes it; each needs at most one new page. Without
  // one (after evicting cached prefixes) the youngest sequence is preempted, which may be itself.
  // running_ is in admission order, so the youngest is the last.
  for (size_t i = 0; i < running_.size(); ++i) {
    Sequence& s = *running_[i];
    if (static_cast<int64_t>(s.tokens.size()) - s.state.n_tokens() != 1) continue;
    bool preempted_self = false;
    while (!preempted_self && !s.state.try_reserve(1)) {
      if (make_room(s.state.pages_needed(1))) continue;
      preempted_self = i + 1 == running_.size();
      preempt(running_.size() - 1);
    }
    if (preempted_self) break;
  }
  if (running_.empty()) return;

  // The batch: all decode tokens, then whole prompt chunks while the token budget lasts (at least
  // one chunk per step, so prompts always progress). Chunks end at multiples of the engine's
  // prefill chunk whatever else is running, so a prompt is cut the same way alone or batched.
  const int64_t chunk_size = engine_.options().prefill_chunk;
  std::vector<SeqInput> batch;
  std::vector<Sequence*> members;
  int64_t budget = options_.step_tokens;
  for (auto& sp : running_) {
    Sequence& s = *sp;
    const int64_t fed = s.state.n_tokens();
    if (static_cast<int64_t>(s.tokens.size()) - fed == 1) {
      batch.push_back({std::span<const int32_t>(s.tokens).subspan(static_cast<size_t>(fed)), fed, s.state.pages(), false});
      members.push_back(&s);
      --budget;
    }
  }
  bool any_chunk = false;
  for (auto& sp : running_) {
    Sequence& s = *sp;
    const int64_t fed = s.state.n_tokens(), total = static_cast<int64_t>(s.tokens.size());
    if (total - fed <= 1) continue;
    const int64_t end = std::min(total, (fed / chunk_size + 1) * chunk_size);
    if (any_chunk && end - fed > budget) continue;
    batch.push_back({std::span<const int32_t>(s.tokens).subspan(static_cast<size_t>(fed), static_cast<size_t>(end - fed)),
                     fed, s.state.pages(), false});
    members.push_back(&s);
    budget -= end - fed;
    any_chunk = true;
  }

  try {
    engine_.model().forward(batch, pool.view(), logits_);
  } catch (const Error& e) {
    // A forward refused before writing anything (checked inputs): the batch's requests fail.
    for (Sequence* s : members) {
      auto it = std::find_if(running_.begin(), running_.end(), [&](const auto& p) { return p.get() == s; });
      retire(static_cast<size_t>(it - running_.begin()), "error", e);
    }
    return;
  }
  const int64_t vocab = engine_.model_vocab_size();
  const Clock::time_point now = Clock::now();
  std::vector<Sequence*> ended;
  uint64_t generated = 0;
  std::vector<double> ttfts, gaps;
  for (size_t b = 0; b < members.size(); ++b) {
    Sequence& s = *members[b];
    s.state.commit(static_cast<int64_t>(batch[b].tokens.size()));
    if (s.state.n_tokens() < static_cast<int64_t>(s.tokens.size())) continue;  // more prompt to feed
    if (options_.prefix_cache && !s.cached) {
      cache_prefix(s);  // the prompt's pages, for requests sharing its start
      s.cached = true;
    }
    const std::span<float> row(logits_.data() + static_cast<int64_t>(b) * vocab, static_cast<size_t>(vocab));
    s.output.mask_logits(row);
    const std::span<const int32_t> prompt(s.request.prompt);
    SampledToken t = s.sampler.sample(row, prompt, s.output.tokens());
    const int32_t id = t.id;
    SampledToken kept = s.request.logprobs ? t : SampledToken{};
    const std::string text = s.output.add(std::move(t));
    s.tokens.push_back(id);
    ++generated;
    if (s.output.tokens().size() == 1) {
      s.first_token = now;
      ttfts.push_back(seconds(now - s.submitted));
    } else {
      gaps.push_back(seconds(now - s.last_token));
    }
    s.last_token = now;
    s.handle->push(text, id, s.request.logprobs ? &kept : nullptr);
    if (s.output.done()) ended.push_back(&s);
  }

  {
    std::lock_guard lock(mu_);
    ++stats_.steps;
    stats_.generated_tokens += generated;
    for (double t : ttfts) stats_.ttft.observe(t);
    for (double g : gaps) stats_.inter_token.observe(g);
  }
  for (Sequence* s : ended) {
    auto it = std::find_if(running_.begin(), running_.end(), [&](const auto& p) { return p.get() == s; });
    retire(static_cast<size_t>(it - running_.begin()), "stop");
  }
  publish_gauges();
}

// The queue, running and KV page gauges of stats(), as of now. Called before a handle learns that
// its request ended, so that a caller who waited for it reads gauges that already count it out.
void RequestManager::publish_gauges() {
  const KvPool& pool = engine_.kv_pool();
  int64_t cached_only = 0;  // pages referenced by the prefix cache alone (what eviction would free)
  cache_refs_.assign(static_cast<size_t>(pool.n_pages()), 0);
  for (const auto& e : prefixes_)
    for (int32_t p : e->state.pages()) ++cache_refs_[static_cast<size_t>(p)];
  for (int32_t p = 0; p < pool.n_pages(); ++p)
    if (cache_refs_[static_cast<size_t>(p)] > 0 && cache_refs_[static_cast<size_t>(p)] == pool.references(p))
      ++cached_only;
  std::lock_guard lock(mu_);
  stats_.queued = static_cast<int64_t>(queue_.size());
  stats_.running = static_cast<int64_t>(running_.size());
  stats_.kv_pages_used = pool.used_pages();
  stats_.kv_pages_free = pool.free_pages();
  stats_.kv_pages_cached = cached_only;
}

}  // namespace bf
