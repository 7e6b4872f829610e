// batch_forge: the command-line entry point. Subcommands live in their own files; this one only
// declares the interface (CLI11) and turns library errors into a message and an exit code.
#include <cstdio>
#include <exception>

#include <CLI/CLI.hpp>

#include "batch_forge/core/error.h"
#include "batch_forge/core/log.h"
#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{
      "batch_forge: a native inference engine for JAX/Equinox models.\n"
      "With no subcommand it answers chat prompts with the default model (see --model) through the\n"
      "request manager, alone and batched together, then prints the quick benchmark table.",
      "batch_forge"};
  app.set_version_flag("--version", std::string("batch_forge ") + BF_VERSION);
  app.require_subcommand(0, 1);
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "Debug logging");

  bf::app::DefaultRunOptions run_options;
  app.add_option(
      "--model", run_options.model,
      "Model file for the default run (default: $BATCH_FORGE_MODEL, else models/smollm2-135m-instruct.safetensors)");

  bf::app::InspectOptions inspect_options;
  CLI::App* inspect = app.add_subcommand(
      "inspect",
      "Show a safetensors file: family, config, tensor table (name, dtype, shape, bytes, offset alignment), "
      "totals; validates batch_forge models against their config");
  inspect->add_option("file", inspect_options.path, "A .safetensors file")->required();
  inspect->add_flag("--json", inspect_options.json, "Print one JSON object instead of the table");

  bf::app::QuantizeOptions quantize_options;
  CLI::App* quantize = app.add_subcommand(
      "quantize", "Quantize a model's weights (rank-2 float tensors, blocks along the input axis): IN → OUT");
  quantize->add_option("input", quantize_options.input, "Input .safetensors (f32/f16/bf16 weights)")->required();
  quantize->add_option("output", quantize_options.output, "Output .safetensors")->required();
  quantize->add_option("--scheme", quantize_options.scheme, "Weight format")
      ->required()
      ->check(CLI::IsMember({"q8_0", "q4_0", "nf4", "fp8_e4m3"}));

  bf::app::BenchOptions bench_options;
  CLI::App* bench = app.add_subcommand(
      "bench", "Benchmark our kernels beside the vendor library (OpenBLAS) against this machine's roofline");
  bench->add_option("--kernels", bench_options.kernels, "Force a side: auto (both), vendor or custom")
      ->check(CLI::IsMember({"auto", "vendor", "custom"}));
  bench->add_option("--group", bench_options.groups, "Only these groups (attention, elementwise, linear, model)");
  bench->add_option("--threads", bench_options.threads, "Threads (default: the cores this process may use)");
  bench->add_option("--isa", bench_options.isa, "CPU kernels: amx (avx512 + AMX-INT8 tiles), avx512, avx2 or scalar (default: best)");
  bench->add_flag("--quick", bench_options.quick, "Fewer shapes, shorter timing");
  bench->add_option("--model", bench_options.model,
                    "Also benchmark this model's decode and prefill (group 'model'), as stored, q8_0 and q4_0");
  bench->add_option("--json", bench_options.json_path, "Also write JSON records to FILE ('-': stdout only)")
      ->expected(0, 1)
      ->default_str("-");

  auto engine_flags = [](CLI::App* cmd, bf::app::EngineFlags& flags) {
    cmd->add_option("--threads", flags.threads, "CPU threads (default: the cores this process may use)");
    cmd->add_option("--quant", flags.quant, "Quantize the weights while loading")
        ->check(CLI::IsMember({"q8_0", "q4_0", "nf4", "fp8_e4m3"}));
    cmd->add_option("--kv-memory", flags.kv_memory, "Memory for the KV page pool (e.g. 256M, 2G)")
        ->capture_default_str();
  };

  bf::app::GenerateOptions gen;
  CLI::App* generate = app.add_subcommand(
      "generate",
      "Generate text from a prompt, streaming tokens; prints prompt/generation speed and time to first token");
  generate->add_option("--model", gen.model, "Model file (.safetensors from export_eqx.py or convert_gguf)")
      ->required();
  generate->add_option("--prompt", gen.prompt, "Prompt text")->required();
  generate->add_flag("--chat", gen.chat, "Wrap the prompt as a user message in the model's chat template");
  generate->add_option("--system", gen.system, "System message (with --chat)");
  generate->add_option("--max-tokens", gen.max_tokens, "Most tokens to generate")->capture_default_str();
  generate->add_option("--temperature", gen.sampling.temperature, "0: greedy")->capture_default_str();
  generate->add_option("--top-k", gen.sampling.top_k, "0: off")->capture_default_str();
  generate->add_option("--top-p", gen.sampling.top_p, "1: off")->capture_default_str();
  generate->add_option("--min-p", gen.sampling.min_p, "0: off")->capture_default_str();
  generate->add_option("--repetition-penalty", gen.sampling.repetition_penalty, "1: off")->capture_default_str();
  generate->add_option("--frequency-penalty", gen.sampling.frequency_penalty, "0: off")->capture_default_str();
  generate->add_option("--presence-penalty", gen.sampling.presence_penalty, "0: off")->capture_default_str();
  generate->add_option("--seed", gen.sampling.seed, "Sampling seed (same seed, same output)")->capture_default_str();
  generate->add_option("--stop", gen.stop, "Stop string (repeatable; not part of the output)");
  generate->add_flag("--ignore-eos", gen.ignore_eos, "Keep going past end-of-sequence tokens");
  generate->add_flag("--json", gen.json, "Print one JSON object: text, token ids, timings");
  engine_flags(generate, gen.engine);

  bf::app::PerplexityOptions ppl;
  CLI::App* perplexity =
      app.add_subcommand("perplexity", "Perplexity of a text file (the protocol of python -m batch_forge.perplexity)");
  perplexity->add_option("--model", ppl.model, "Model file")->required();
  perplexity->add_option("--text", ppl.text_file, "UTF-8 text file")->required();
  perplexity->add_option("--ctx", ppl.ctx, "Tokens per window")->capture_default_str();
  perplexity->add_option("--batch", ppl.batch, "Windows per forward")->capture_default_str();
  perplexity->add_flag("--json", ppl.json, "Print one JSON object");
  engine_flags(perplexity, ppl.engine);

  bf::app::ServeOptions srv;
  CLI::App* serve = app.add_subcommand(
      "serve",
      "Serve the model over an OpenAI-compatible HTTP API (/v1/completions, /v1/chat/completions, /v1/models, "
      "/health, /metrics) with continuous batching; SIGINT/SIGTERM stops it after running requests finish");
  serve->add_option("--model", srv.model, "Model file")->required();
  serve->add_option("--host", srv.host, "Address to listen on")->capture_default_str();
  serve->add_option("--port", srv.port, "TCP port (0: any free port; the listening line names it)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  serve
      ->add_option("--api-key", srv.api_key,
                   "Require 'Authorization: Bearer KEY' on every route but /health (or $BATCH_FORGE_API_KEY)")
      ->envname("BATCH_FORGE_API_KEY");
  serve->add_option("--model-name", srv.model_name,
                    "Model id clients name (default: the file name without .safetensors)");
  serve->add_option("--max-queue", srv.max_queue, "Requests waiting for admission; more get 429")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  serve->add_option("--max-running", srv.max_running, "Sequences decoded together")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  serve->add_option("--max-body", srv.max_body, "Largest request body (e.g. 1M); larger gets 413")
      ->capture_default_str();
  serve
      ->add_option("--max-prompt-tokens", srv.max_prompt_tokens,
                   "Longest prompt in tokens (default: the model's context - 1)")
      ->check(CLI::NonNegativeNumber);
  serve
      ->add_option("--max-tokens-limit", srv.max_tokens_limit,
                   "Largest max_tokens a request may ask for (default: the model's context)")
      ->check(CLI::NonNegativeNumber);
  serve->add_option("--io-threads", srv.io_threads, "Threads for the sockets (they never run the model)")
      ->check(CLI::Range(1, 8))
      ->capture_default_str();
  serve
      ->add_option("--drain-timeout", srv.drain_seconds,
                   "Seconds running requests get to finish after SIGINT/SIGTERM (a second signal cancels them)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  engine_flags(serve, srv.engine);

  CLI11_PARSE(app, argc, argv);
  bench_options.json = bench->count("--json") > 0;
  if (verbose) bf::set_log_level(bf::LogLevel::kDebug);

  try {
    if (*inspect) return bf::app::run_inspect(inspect_options);
    if (*quantize) return bf::app::run_quantize(quantize_options);
    if (*bench) return bf::app::run_bench(bench_options);
    if (*generate) return bf::app::run_generate(gen);
    if (*perplexity) return bf::app::run_perplexity(ppl);
    if (*serve) return bf::app::run_serve(srv);
    return bf::app::run_default(run_options);
  } catch (const bf::Error& e) {
    std::fprintf(stderr, "batch_forge: %s\n", e.what());
    return e.code() == bf::ErrorCode::kInternal ? 70 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "batch_forge: unexpected error: %s\n", e.what());
    return 70;
  }
}
