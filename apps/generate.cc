// batch_forge generate: one prompt through the engine, tokens streamed to stdout as they come,
// then prompt and generation speed and time to first token on stderr (or everything as one JSON
// object with --json).
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "batch_forge/core/error.h"
#include "batch_forge/runtime/engine.h"
#include "commands.h"

namespace bf::app {

EngineOptions engine_options(const EngineFlags& flags) {
  EngineOptions o;
  o.backend_options.threads = flags.threads;
  o.load.quant = flags.quant;
  o.kv_memory = parse_size(flags.kv_memory, "--kv-memory");
  return o;
}

int64_t parse_size(const std::string& text, const char* flag) {
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  const std::string unit = text.substr(used);
  double scale = 0;
  if (unit.empty() || unit == "B") scale = 1;
  if (unit == "K" || unit == "KiB" || unit == "k") scale = 1024.0;
  if (unit == "M" || unit == "MiB") scale = 1024.0 * 1024;
  if (unit == "G" || unit == "GiB") scale = 1024.0 * 1024 * 1024;
  if (used == 0 || scale == 0 || !(value > 0))
    throw Error(ErrorCode::kInvalidArgument, "cli",
                cat(flag, " '", text, "' is not a size (a positive number with an optional K, M or G suffix)"));
  return static_cast<int64_t>(value * scale);
}

int run_generate(const GenerateOptions& options) {
  auto engine = Engine::open(options.model, engine_options(options.engine));
  std::vector<int32_t> prompt;
  if (options.chat) {
    std::vector<ChatMessage> messages;
    if (!options.system.empty()) messages.push_back({"system", options.system});
    messages.push_back({"user", options.prompt});
    prompt = engine->encode_chat(messages);
  } else {
    prompt = engine->encode_prompt(options.prompt);
  }

  GenerationRequest request;
  request.prompt = prompt;
  request.max_tokens = options.max_tokens;
  request.stop = options.stop;
  request.ignore_eos = options.ignore_eos;
  request.sampling = options.sampling;
  if (options.chat && engine->chat_template())
    for (const std::string& s : engine->chat_template()->stop_strings()) request.stop.push_back(s);

  SeqState seq(engine->kv_pool());
  const bool stream = !options.json;
  const GenerationResult r = engine->generate(seq, request, [&](std::string_view piece) {
    if (!stream) return;
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
  });

  const auto n_gen = static_cast<double>(r.tokens.size());
  const double prompt_tps = r.prefill_seconds > 0 ? static_cast<double>(r.prompt_tokens) / r.prefill_seconds : 0;
  // Decode speed over the steps after the first token (each one forward + sample).
  const double decode_tps = r.tokens.size() > 1 && r.decode_seconds > 0 ? (n_gen - 1) / r.decode_seconds : 0;
  if (options.json) {
    nlohmann::json j;
    j["text"] = r.text;
    j["tokens"] = r.tokens;
    j["prompt_tokens"] = r.prompt_tokens;
    j["prompt_ids"] = prompt;
    j["finish_reason"] = r.finish_reason;
    j["timings"] = {{"prefill_seconds", r.prefill_seconds},
                    {"ttft_seconds", r.ttft_seconds},
                    {"decode_seconds", r.decode_seconds},
                    {"prompt_tokens_per_second", prompt_tps},
                    {"decode_tokens_per_second", decode_tps}};
    j["model"] = engine->model().describe();
    std::printf("%s\n", j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::printf("\n");
    std::fprintf(stderr,
                 "\n[%s] prompt %lld tokens in %.1f ms (%.1f tok/s); generated %zu tokens (%s), %.1f tok/s; time to "
                 "first token %.1f ms\n",
                 engine->model().describe().c_str(), static_cast<long long>(r.prompt_tokens), r.prefill_seconds * 1e3,
                 prompt_tps, r.tokens.size(), r.finish_reason.c_str(), decode_tps, r.ttft_seconds * 1e3);
  }
  return 0;
}

}  // namespace bf::app
