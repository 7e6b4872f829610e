// Subcommands of the batch_forge CLI. Each returns the process exit code; errors from the library
// arrive as bf::Error and are printed by main().
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "batch_forge/runtime/engine.h"
#include "batch_forge/runtime/sampler.h"

namespace bf::app {

struct InspectOptions {
  std::string path;
  bool json = false;
};
// Exit 0: a valid file (a valid model, for a file with batch_forge metadata); 1: the file reads
// but is not a valid model (problems are listed); errors from the loader propagate.
int run_inspect(const InspectOptions& options);

struct QuantizeOptions {
  std::string input;
  std::string output;
  std::string scheme;  // q8_0 | q4_0 | nf4 | fp8_e4m3
};
// Writes OUT: IN with its eligible weights quantized (docs/quantization.md), byte-identical to
// python -m batch_forge.quant on the same input.
int run_quantize(const QuantizeOptions& options);

struct BenchOptions {
  std::string kernels = "auto";  // auto | vendor | custom
  std::vector<std::string> groups;
  int threads = 0;
  std::string isa;
  bool quick = false;
  std::string model;  // --model FILE: the "model" group
  bool json = false;
  std::string json_path;  // --json FILE; "-" or empty with json: stdout
};
int run_bench(const BenchOptions& options);

struct DefaultRunOptions {
  std::string model;  // empty: $BATCH_FORGE_MODEL, else models/default.safetensors
};
// What `batch_forge` with no arguments does.
int run_default(const DefaultRunOptions& options);

// Flags every command that opens a model for generation shares.
struct EngineFlags {
  int threads = 0;
  std::string quant;               // empty: weights as stored
  std::string kv_memory = "256M";  // KV page pool
};
EngineOptions engine_options(const EngineFlags& flags);
// "512M", "2G", "1048576" → bytes; Error(kInvalidArgument, "cli") naming the flag otherwise.
int64_t parse_size(const std::string& text, const char* flag);

struct GenerateOptions {
  std::string model;
  std::string prompt;
  bool chat = false;
  std::string system;
  int64_t max_tokens = 128;
  std::vector<std::string> stop;
  bool ignore_eos = false;
  bool json = false;
  SamplingParams sampling;
  EngineFlags engine;
};
int run_generate(const GenerateOptions& options);

struct PerplexityOptions {
  std::string model;
  std::string text_file;
  int64_t ctx = 256;
  int64_t batch = 4;  // windows per forward
  bool json = false;
  EngineFlags engine;
};
int run_perplexity(const PerplexityOptions& options);

struct ServeOptions {
  std::string model;
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (printed)
  std::string api_key;
  std::string model_name;  // empty: the model file's stem
  int64_t max_queue = 256;
  int64_t max_running = 64;
  std::string max_body = "1M";
  int64_t max_prompt_tokens = 0;  // 0: the context length - 1
  int64_t max_tokens_limit = 0;   // 0: the context length
  int io_threads = 1;
  double drain_seconds = 60;
  EngineFlags engine;
};
// Serves the OpenAI-compatible HTTP API (docs/server.md) until SIGINT/SIGTERM; exit 0 after a
// clean stop.
int run_serve(const ServeOptions& options);

}  // namespace bf::app
