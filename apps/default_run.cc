// `batch_forge` with no arguments: open the default model (SmolLM2-135M-Instruct, fetched and
// converted by scripts/fetch_model.sh), answer a few chat prompts with streaming output and
// speed, then the same requests through the RequestManager one at a time and all at once (continuous
// batching: tokens/s of both, and whether each request got the same tokens), then print the
// benchmark table (quick mode) with the model's own decode and prefill rows.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "batch_forge/core/error.h"
#include "batch_forge/core/thread_pool.h"
#include "batch_forge/runtime/engine.h"
#include "batch_forge/runtime/request_manager.h"
#include "bench/bench.h"
#include "commands.h"

namespace bf::app {
namespace {

constexpr const char* kDefaultModel = "models/smollm2-135m-instruct.safetensors";

constexpr const char* kPrompts[] = {
    "What is the capital of France?",
    "Give me three tips for writing clear code.",
    "Explain in two sentences why the sky is blue.",
    "Write a haiku about the sea.",
    "What is 12 times 12?",
    "Name three planets of the solar system.",
    "Suggest a name for a black cat.",
    "Why do leaves change color in autumn?",
};

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

}  // namespace

int run_default(const DefaultRunOptions& options) {
  std::string path = options.model;
  if (path.empty()) {
    const char* env = std::getenv("BATCH_FORGE_MODEL");
    path = env && *env ? env : kDefaultModel;
  }
  if (!std::filesystem::exists(path))
    throw Error(ErrorCode::kNotFound, "batch_forge",
                cat("no model at '", path, "'; fetch and convert the default one with\n  scripts/fetch_model.sh\n",
                    "or name one with --model FILE (or $BATCH_FORGE_MODEL)"));

  EngineOptions engine_options;
  engine_options.backend_options.batch_invariant = true;  // a request's tokens do not depend on its batch
  auto engine = Engine::open(path, engine_options);
  const ModelFile& file = engine->file();
  uint64_t bytes = 0;
  for (const TensorInfo* t : file.tensors()) bytes += t->nbytes();
  std::printf("batch_forge: loaded %s (format v%s)\n", file.path().c_str(), file.format_version().c_str());
  std::printf("  model    %s\n", engine->model().describe().c_str());
  std::printf("  weights  %zu tensors, %llu bytes, mapped without copying\n", file.tensors().size(),
              static_cast<unsigned long long>(bytes));
  std::printf(
      "  kv pool  %lld pages of %lld tokens (%lld bytes each)\n", static_cast<long long>(engine->kv_pool().n_pages()),
      static_cast<long long>(engine->kv_pool().page_size()), static_cast<long long>(engine->kv_pool().page_bytes()));
  std::printf("  threads  %d\n", ThreadPool::global().size());

  if (engine->has_tokenizer()) {
    RequestManager manager(*engine);
    auto chat_request = [&](const char* prompt) {
      GenerationRequest request;
      const ChatMessage message{"user", prompt};
      request.prompt = engine->chat_template() ? engine->encode_chat({&message, 1}) : engine->encode_prompt(prompt);
      request.max_tokens = 48;
      request.sampling.temperature = 0;
      if (engine->chat_template()) request.stop = engine->chat_template()->stop_strings();
      return request;
    };
    // One answer streamed as the scheduler produces it.
    std::printf("\n> %s\n", kPrompts[0]);
    std::fflush(stdout);
    auto handle = manager.submit(chat_request(kPrompts[0]));
    StreamChunk chunk;
    while (handle->next(chunk)) {
      std::fwrite(chunk.text.data(), 1, chunk.text.size(), stdout);
      std::fflush(stdout);
    }
    const GenerationResult r = handle->result();
    const double tps = r.tokens.size() > 1 ? static_cast<double>(r.tokens.size() - 1) / r.decode_seconds : 0;
    std::printf("\n  [%lld prompt tokens, %.1f ms to first token; %zu tokens at %.1f tok/s; %s]\n",
                static_cast<long long>(r.prompt_tokens), r.ttft_seconds * 1e3, r.tokens.size(), tps,
                r.finish_reason.c_str());

    // The same requests one at a time, then all submitted at once: continuous batching runs them
    // through shared forwards, and each gets the tokens it got alone.
    const size_t n = std::size(kPrompts);
    std::vector<GenerationResult> alone, together(n);
    const auto t0 = Clock::now();
    for (const char* prompt : kPrompts) alone.push_back(manager.submit(chat_request(prompt))->wait());
    const double alone_s = since(t0);
    const uint64_t steps0 = manager.stats().steps;
    const auto t1 = Clock::now();
    std::vector<std::shared_ptr<RequestHandle>> handles;
    for (const char* prompt : kPrompts) handles.push_back(manager.submit(chat_request(prompt)));
    for (size_t i = 0; i < n; ++i) together[i] = handles[i]->wait();
    const double together_s = since(t1);
    size_t tokens = 0, same = 0;
    for (size_t i = 0; i < n; ++i) {
      tokens += together[i].tokens.size();
      same += together[i].tokens == alone[i].tokens;
    }
    std::printf("\ncontinuous batching, %zu chat requests (greedy, up to 48 tokens each):\n", n);
    std::printf("  one at a time    %5zu tokens in %6.2f s = %7.1f tok/s\n", tokens, alone_s,
                static_cast<double>(tokens) / alone_s);
    std::printf("  all at once      %5zu tokens in %6.2f s = %7.1f tok/s  (%.2fx, %llu batched steps)\n", tokens,
                together_s, static_cast<double>(tokens) / together_s, alone_s / together_s,
                static_cast<unsigned long long>(manager.stats().steps - steps0));
    std::printf("  same tokens as one at a time: %zu of %zu requests\n", same, n);
    for (size_t i = 0; i < n; ++i) {
      std::string line = together[i].text.substr(0, together[i].text.find('\n'));
      if (line.size() > 72) line = line.substr(0, 69) + "...";
      std::printf("  > %-44s %s\n", kPrompts[i], line.c_str());
    }
  } else {
    std::printf("\n(no tokenizer in %s: skipping the chat prompts)\n", file.path().c_str());
  }

  std::printf("\nbenchmarks (quick; `batch_forge bench` for the full table):\n");
  std::fflush(stdout);
  bench::Options bench_options;
  bench_options.quick = true;
  bench_options.model = path;
  bench::print_table(bench::run(bench_options));
  return 0;
}

}  // namespace bf::app
