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
      "With no subcommand it runs the default job on the default model (see --model).",
      "batch_forge"};
  app.set_version_flag("--version", std::string("batch_forge ") + BF_VERSION);
  app.require_subcommand(0, 1);
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "Debug logging");

  bf::app::DefaultRunOptions run_options;
  app.add_option("--model", run_options.model,
                 "Model file for the default run (default: $BATCH_FORGE_MODEL, else models/default.safetensors)");

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
  bench->add_option("--group", bench_options.groups, "Only these groups (linear, attention, ...)");
  bench->add_option("--threads", bench_options.threads, "Threads (default: the cores this process may use)");
  bench->add_option("--isa", bench_options.isa, "CPU kernels: avx512, avx2 or scalar (default: best)");
  bench->add_flag("--quick", bench_options.quick, "Fewer shapes, shorter timing");
  bench->add_option("--json", bench_options.json_path, "Also write JSON records to FILE ('-': stdout only)")
      ->expected(0, 1)
      ->default_str("-");

  CLI11_PARSE(app, argc, argv);
  bench_options.json = bench->count("--json") > 0;
  if (verbose) bf::set_log_level(bf::LogLevel::kDebug);

  try {
    if (*inspect) return bf::app::run_inspect(inspect_options);
    if (*quantize) return bf::app::run_quantize(quantize_options);
    if (*bench) return bf::app::run_bench(bench_options);
    return bf::app::run_default(run_options);
  } catch (const bf::Error& e) {
    std::fprintf(stderr, "batch_forge: %s\n", e.what());
    return e.code() == bf::ErrorCode::kInternal ? 70 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "batch_forge: unexpected error: %s\n", e.what());
    return 70;
  }
}
