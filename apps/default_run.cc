// `batch_forge` with no arguments: open the default model (SmolLM2-135M-Instruct, fetched and
// converted by scripts/fetch_model.sh), answer a few chat prompts with streaming output and
// their speeds, then print the benchmark table (quick mode) with the model's own decode and
// prefill rows. Requests run one after another here; the RequestManager of issue 5 will batch them.
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "batch_forge/core/error.h"
#include "batch_forge/core/thread_pool.h"
#include "batch_forge/runtime/engine.h"
#include "bench/bench.h"
#include "commands.h"

namespace bf::app {
namespace {

constexpr const char* kDefaultModel = "models/smollm2-135m-instruct.safetensors";

constexpr const char* kPrompts[] = {
    "What is the capital of France?",
    "Give me three tips for writing clear code.",
    "Explain in two sentences why the sky is blue.",
};

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

  auto engine = Engine::open(path);
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
    for (const char* prompt : kPrompts) {
      std::printf("\n> %s\n", prompt);
      std::fflush(stdout);
      GenerationRequest request;
      const ChatMessage message{"user", prompt};
      request.prompt = engine->chat_template() ? engine->encode_chat({&message, 1}) : engine->encode_prompt(prompt);
      request.max_tokens = 64;
      request.sampling.temperature = 0;
      if (engine->chat_template()) request.stop = engine->chat_template()->stop_strings();
      SeqState seq(engine->kv_pool());
      const GenerationResult r = engine->generate(seq, request, [](std::string_view piece) {
        std::fwrite(piece.data(), 1, piece.size(), stdout);
        std::fflush(stdout);
      });
      const double tps = r.tokens.size() > 1 ? static_cast<double>(r.tokens.size() - 1) / r.decode_seconds : 0;
      std::printf("\n  [%lld prompt tokens, %.1f ms to first token; %zu tokens at %.1f tok/s; %s]\n",
                  static_cast<long long>(r.prompt_tokens), r.ttft_seconds * 1e3, r.tokens.size(), tps,
                  r.finish_reason.c_str());
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
