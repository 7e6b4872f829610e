// batch_forge perplexity: the protocol of python/batch_forge/perplexity.py (its docstring is the
// specification), so the engine's number can be compared with JAX's: non-overlapping windows of
// --ctx tokens, each evaluated from position 0, every token after a window's first scored, the
// negative log-likelihood summed in double. Several windows go through one forward as separate
// sequences.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "batch_forge/core/error.h"
#include "batch_forge/runtime/engine.h"
#include "commands.h"

namespace bf::app {

int run_perplexity(const PerplexityOptions& options) {
  if (options.ctx < 2)
    throw Error(ErrorCode::kInvalidArgument, "cli", cat("--ctx must be at least 2, got ", options.ctx));
  if (options.batch < 1)
    throw Error(ErrorCode::kInvalidArgument, "cli", cat("--batch must be >= 1, got ", options.batch));
  std::ifstream in(options.text_file, std::ios::binary);
  if (!in) throw Error(ErrorCode::kNotFound, "perplexity", cat("cannot read '", options.text_file, "'"));
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();

  EngineOptions eo = engine_options(options.engine);
  eo.kv_page_size = 16;
  auto engine = Engine::open(options.model, eo);
  LanguageModel& model = engine->model();
  if (options.ctx > model.max_seq_len())
    throw Error(ErrorCode::kInvalidArgument, "cli",
                cat("--ctx ", options.ctx, " is longer than the model's context of ", model.max_seq_len()));
  const std::vector<int32_t> ids = engine->encode_prompt(text);

  std::vector<std::span<const int32_t>> windows;
  for (size_t i = 0; i < ids.size(); i += static_cast<size_t>(options.ctx)) {
    const size_t n = std::min(ids.size() - i, static_cast<size_t>(options.ctx));
    if (n >= 2) windows.push_back(std::span<const int32_t>(ids).subspan(i, n));
  }

  const auto t0 = std::chrono::steady_clock::now();
  const int64_t vocab = model.vocab_size();
  double nll_sum = 0;
  int64_t scored = 0;
  std::vector<float> logits;
  for (size_t w0 = 0; w0 < windows.size(); w0 += static_cast<size_t>(options.batch)) {
    const size_t w1 = std::min(windows.size(), w0 + static_cast<size_t>(options.batch));
    std::vector<SeqState> states;
    std::vector<SeqInput> batch;
    states.reserve(w1 - w0);
    for (size_t w = w0; w < w1; ++w) {
      states.emplace_back(engine->kv_pool());
      states.back().reserve(static_cast<int64_t>(windows[w].size()));
    }
    for (size_t w = w0; w < w1; ++w) batch.push_back({windows[w], 0, states[w - w0].pages(), true});
    model.forward(batch, engine->kv_pool().view(), logits);
    const float* row = logits.data();
    for (size_t w = w0; w < w1; ++w) {
      const auto win = windows[w];
      for (size_t j = 0; j < win.size(); ++j, row += vocab) {
        if (j + 1 == win.size()) continue;  // the last position predicts past the window
        double mx = -INFINITY;
        for (int64_t c = 0; c < vocab; ++c) mx = std::max(mx, static_cast<double>(row[c]));
        double z = 0;
        for (int64_t c = 0; c < vocab; ++c) z += std::exp(static_cast<double>(row[c]) - mx);
        nll_sum += mx + std::log(z) - static_cast<double>(row[win[j + 1]]);
        ++scored;
      }
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double mean = scored ? nll_sum / static_cast<double>(scored) : 0;
  const double ppl = std::exp(mean);
  if (options.json) {
    nlohmann::json j = {{"model", options.model}, {"weights", model.describe()}, {"text", options.text_file},
                        {"ctx", options.ctx},     {"n_tokens", ids.size()},      {"n_windows", windows.size()},
                        {"n_scored", scored},     {"nll_sum", nll_sum},          {"mean_nll", mean},
                        {"perplexity", ppl},      {"seconds", seconds}};
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("perplexity %.4f over %lld scored tokens (%zu windows of <= %lld), %.1f tokens/s [%s]\n", ppl,
                static_cast<long long>(scored), windows.size(), static_cast<long long>(options.ctx),
                static_cast<double>(ids.size()) / seconds, model.describe().c_str());
  }
  return 0;
}

}  // namespace bf::app
