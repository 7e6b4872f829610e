// RequestManager on the tiny Equinox fixtures (python/batch_forge/model_fixtures.py): continuous
// batching gives each request exactly the tokens it gets alone and the reference's greedy tokens;
// preemption under memory pressure, prefix reuse, cancellation, queue limits, bad requests and
// shutdown leave every KV page accounted for.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <random>
#include <thread>

#include "backends/cpu/isa.h"
#include "batch_forge/core/error.h"
#include "batch_forge/io/safetensors.h"
#include "batch_forge/runtime/request_manager.h"
#include "support/paths.h"

namespace bf {
namespace {

std::string fixture_dir() { return testing::binary_dir() + "/fixtures/models/"; }

std::vector<int32_t> read_ids(const std::string& name, const std::string& tensor) {
  const SafetensorsFile f = SafetensorsFile::open(fixture_dir() + name + ".fixture.safetensors");
  const TensorInfo* t = f.find(tensor);
  if (!t) throw Error(ErrorCode::kNotFound, "test", cat(f.path(), ": no tensor ", tensor));
  std::vector<int32_t> out(t->nbytes() / sizeof(int32_t));
  std::memcpy(out.data(), f.data(*t).data(), t->nbytes());
  return out;
}

using Param = std::tuple<std::string, cpu::Isa>;

class RequestManagerTest : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    const auto& [name, isa] = GetParam();
    if (!cpu::isa_supported(isa)) GTEST_SKIP() << "this CPU lacks " << cpu::isa_name(isa);
    prompt_ = read_ids(name, "prompt");
    greedy_ = read_ids(name, "greedy");
  }

  // An engine whose pool holds `pages` pages of kPageSize tokens.
  std::unique_ptr<Engine> open(int64_t pages) {
    const auto& [name, isa] = GetParam();
    EngineOptions options;
    options.backend_options = BackendOptions{2, KernelPreference::kAuto, std::string(cpu::isa_name(isa))};
    options.backend_options.batch_invariant = true;
    options.kv_page_size = kPageSize;
    options.prefill_chunk = 16;
    auto probe = Engine::open(fixture_dir() + name + ".model.safetensors", options);
    options.kv_memory = pages * kPageSize * probe->model().kv_layout().bytes_per_token();
    return Engine::open(fixture_dir() + name + ".model.safetensors", options);
  }

  static GenerationRequest greedy(std::vector<int32_t> prompt, int64_t max_tokens) {
    GenerationRequest r;
    r.prompt = std::move(prompt);
    r.sampling.temperature = 0;
    r.max_tokens = max_tokens;
    return r;
  }

  // Prompts of 1 to 40 random ids (seeded), the fixture's prompt first.
  std::vector<std::vector<int32_t>> prompts(size_t n, int64_t vocab) const {
    std::mt19937 rng(1234);
    std::vector<std::vector<int32_t>> out{prompt_};
    while (out.size() < n) {
      std::vector<int32_t> p(1 + rng() % 40);
      for (auto& id : p) id = static_cast<int32_t>(rng() % static_cast<uint32_t>(vocab));
      out.push_back(std::move(p));
    }
    return out;
  }

  // Every page in use is held by the prefix cache alone: nothing leaked.
  static void expect_no_leak(RequestManager& rm) {
    const RequestManagerStats s = rm.stats();
    EXPECT_EQ(s.running, 0);
    EXPECT_EQ(s.queued, 0);
    EXPECT_EQ(s.kv_pages_used, s.kv_pages_cached);
    EXPECT_EQ(rm.engine().kv_pool().used_pages(), s.kv_pages_used);
  }

  static constexpr int64_t kPageSize = 8;
  std::vector<int32_t> prompt_, greedy_;
};

// 33 requests at once: each gets the tokens it gets alone (bit for bit the same logits), and the
// fixture's request gets the Equinox reference's greedy tokens.
TEST_P(RequestManagerTest, BatchedRequestsGetTheirTokensAlone) {
  auto engine = open(512);
  const auto all = prompts(33, engine->model_vocab_size());
  std::vector<std::vector<int32_t>> alone;
  {
    RequestManager rm(*engine);
    for (const auto& p : all) alone.push_back(rm.submit(greedy(p, 24))->wait().tokens);
    expect_no_leak(rm);
  }
  EXPECT_EQ(alone[0], std::vector<int32_t>(greedy_.begin(), greedy_.begin() + 24));
  RequestManagerOptions options;
  options.prefix_cache = false;
  RequestManager rm(*engine, options);
  std::vector<std::shared_ptr<RequestHandle>> handles;
  for (const auto& p : all) handles.push_back(rm.submit(greedy(p, 24)));
  for (size_t i = 0; i < handles.size(); ++i) {
    const GenerationResult r = handles[i]->wait();
    EXPECT_EQ(r.tokens, alone[i]) << "request " << i << " (prompt of " << all[i].size() << ")";
    EXPECT_EQ(r.finish_reason, "length");
  }
  const RequestManagerStats s = rm.stats();
  EXPECT_LT(s.steps, 33u * 24u / 4) << "requests were not batched";
  EXPECT_EQ(s.requests_finished, 33u);
  EXPECT_EQ(s.generated_tokens, 33u * 24u);
  expect_no_leak(rm);
}

// Streaming: the chunks of a request add up to its result, token by token.
TEST_P(RequestManagerTest, StreamAddsUpToTheResult) {
  auto engine = open(128);
  RequestManager rm(*engine);
  auto h = rm.submit(greedy(prompt_, 12));
  std::vector<int32_t> streamed;
  StreamChunk c;
  while (h->next(c)) streamed.insert(streamed.end(), c.tokens.begin(), c.tokens.end());
  EXPECT_EQ(h->poll(c), RequestHandle::Poll::kEnded);
  EXPECT_EQ(streamed, h->result().tokens);
  EXPECT_EQ(streamed, std::vector<int32_t>(greedy_.begin(), greedy_.begin() + 12));
}

// A pool too small for every request at once: sequences are preempted and recomputed, never
// failed, and every request still produces all its tokens.
TEST_P(RequestManagerTest, MemoryPressurePreemptsInsteadOfFailing) {
  auto engine = open(24);  // 192 tokens: about four of these requests at a time
  RequestManagerOptions options;
  options.prefix_cache = false;
  RequestManager rm(*engine, options);
  const auto all = prompts(12, engine->model_vocab_size());
  std::vector<std::shared_ptr<RequestHandle>> handles;
  for (const auto& p : all) handles.push_back(rm.submit(greedy(p, 40)));
  for (size_t i = 0; i < handles.size(); ++i) {
    const GenerationResult r = handles[i]->wait();
    EXPECT_EQ(r.tokens.size(), 40u) << "request " << i;
    EXPECT_EQ(r.finish_reason, "length");
  }
  EXPECT_GT(rm.stats().preemptions, 0u) << "the pool was large enough: the test does not test preemption";
  EXPECT_EQ(rm.stats().requests_finished, 12u);
  EXPECT_EQ(engine->kv_pool().used_pages(), 0);
}

// A prompt that starts with a finished request's prompt shares its pages and gets the same tokens
// as without the cache.
TEST_P(RequestManagerTest, PrefixCacheSharesPagesAndChangesNothing) {
  auto engine = open(256);
  std::vector<int32_t> longer = prompt_;
  for (int i = 0; i < 30; ++i) longer.push_back(static_cast<int32_t>((i * 7 + 3) % engine->model_vocab_size()));
  std::vector<int32_t> follow = longer;
  follow.push_back(5);
  follow.push_back(9);
  std::vector<int32_t> want;
  {
    RequestManagerOptions off;
    off.prefix_cache = false;
    RequestManager rm(*engine, off);
    want = rm.submit(greedy(follow, 16))->wait().tokens;
    EXPECT_EQ(rm.stats().prefix_hit_tokens, 0u);
  }
  RequestManager rm(*engine);
  rm.submit(greedy(longer, 16))->wait();
  EXPECT_GT(rm.stats().kv_pages_cached, 0);
  const GenerationResult r = rm.submit(greedy(follow, 16))->wait();
  EXPECT_EQ(r.tokens, want);
  EXPECT_GE(rm.stats().prefix_hit_tokens, static_cast<uint64_t>(longer.size() / kPageSize * kPageSize));
  expect_no_leak(rm);
}

// Cancel ends a request at the next step with what it has, and its pages return to the pool.
TEST_P(RequestManagerTest, CancelReturnsPages) {
  auto engine = open(128);
  RequestManagerOptions options;
  options.prefix_cache = false;
  RequestManager rm(*engine, options);
  GenerationRequest r = greedy(prompt_, 200);
  r.ignore_eos = true;
  // The stream's callback cancels as soon as it can: the scheduler runs the tiny model faster than
  // this thread would react. It waits for the handle, so the request cannot run to its length
  // while this thread is descheduled between submit and the store (seen on a busy 2-core CI run).
  std::atomic<RequestHandle*> self{nullptr};
  auto h = rm.submit(r, [&] {
    RequestHandle* p = nullptr;
    while (!(p = self.load())) std::this_thread::yield();
    p->cancel();
  });
  self.store(h.get());
  const GenerationResult res = h->wait();
  EXPECT_EQ(res.finish_reason, "cancelled");
  EXPECT_LT(static_cast<int64_t>(res.tokens.size()), engine->context_length() - static_cast<int64_t>(prompt_.size()));
  EXPECT_EQ(rm.stats().requests_cancelled, 1u);
  EXPECT_EQ(engine->kv_pool().used_pages(), 0);
}

// Bad requests are refused at submit, naming what is wrong; the manager keeps serving.
TEST_P(RequestManagerTest, BadRequestsAreRefusedAndServingGoesOn) {
  auto engine = open(8);  // 64 tokens
  RequestManager rm(*engine);
  auto expect_error = [&](GenerationRequest r, ErrorCode code, const std::string& part) {
    try {
      rm.submit(std::move(r));
      ADD_FAILURE() << "no error, expected one naming '" << part << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), code) << e.what();
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  expect_error(greedy({}, 4), ErrorCode::kInvalidArgument, "empty");
  expect_error(greedy({1, static_cast<int32_t>(engine->model_vocab_size())}, 4), ErrorCode::kInvalidArgument,
               "outside the vocabulary");
  expect_error(greedy(std::vector<int32_t>(static_cast<size_t>(engine->context_length()), 1), 4),
               ErrorCode::kInvalidArgument, "context");
  expect_error(greedy(prompt_, 0), ErrorCode::kInvalidArgument, "max_tokens");
  expect_error(greedy(std::vector<int32_t>(60, 1), 100), ErrorCode::kInvalidArgument, "KV pages");
  GenerationRequest bad = greedy(prompt_, 4);
  bad.sampling.temperature = -1;
  expect_error(bad, ErrorCode::kInvalidArgument, "temperature");
  EXPECT_EQ(rm.submit(greedy(prompt_, 8))->wait().tokens, std::vector<int32_t>(greedy_.begin(), greedy_.begin() + 8));
  EXPECT_EQ(rm.stats().requests_rejected, 6u);
}

// A full queue refuses with kResourceExhausted; what was taken still completes.
TEST_P(RequestManagerTest, FullQueueIsRefused) {
  auto engine = open(128);
  RequestManagerOptions options;
  options.max_queue = 1;
  options.max_running = 1;
  RequestManager rm(*engine, options);
  std::vector<std::shared_ptr<RequestHandle>> taken;
  bool refused = false;
  for (int i = 0; i < 10 && !refused; ++i) {
    GenerationRequest r = greedy(prompt_, 60);
    r.ignore_eos = true;
    try {
      taken.push_back(rm.submit(r));
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kResourceExhausted) << e.what();
      refused = true;
    }
  }
  EXPECT_TRUE(refused);
  for (auto& h : taken) EXPECT_EQ(h->wait().tokens.size(), 60u);
}

// shutdown(false) ends running and queued requests as cancelled and returns every page;
// shutdown(true) lets them finish; submit afterwards is refused.
TEST_P(RequestManagerTest, ShutdownCancelsOrDrains) {
  auto engine = open(128);
  {
    RequestManager rm(*engine);
    std::vector<std::shared_ptr<RequestHandle>> hs;
    for (int i = 0; i < 4; ++i) hs.push_back(rm.submit(greedy(prompt_, 30)));
    rm.shutdown(true);
    for (auto& h : hs) EXPECT_EQ(h->wait().finish_reason, "length");
    EXPECT_THROW(rm.submit(greedy(prompt_, 4)), Error);
  }
  EXPECT_EQ(engine->kv_pool().used_pages(), 0);
  RequestManager rm(*engine);
  GenerationRequest r = greedy(prompt_, 500);
  r.ignore_eos = true;
  std::vector<std::shared_ptr<RequestHandle>> hs;
  for (int i = 0; i < 4; ++i) hs.push_back(rm.submit(r));
  rm.shutdown(false);
  for (auto& h : hs) EXPECT_EQ(h->wait().finish_reason, "cancelled");
  EXPECT_EQ(engine->kv_pool().used_pages(), 0);
}

INSTANTIATE_TEST_SUITE_P(Configs, RequestManagerTest,
                         ::testing::Combine(::testing::Values(std::string("gqa_rms_swiglu"), std::string("mqa_rms_tied")),
                                            ::testing::Values(cpu::Isa::kAvx512, cpu::Isa::kAvx2, cpu::Isa::kScalar)),
                         [](const ::testing::TestParamInfo<Param>& info) {
                           return std::get<0>(info.param) + "_" + std::string(cpu::isa_name(std::get<1>(info.param)));
                         });

}  // namespace
}  // namespace bf
