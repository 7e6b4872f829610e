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

  CLI11_PARSE(app, argc, argv);
  if (verbose) bf::set_log_level(bf::LogLevel::kDebug);

  try {
    if (*inspect) return bf::app::run_inspect(inspect_options);
    return bf::app::run_default(run_options);
  } catch (const bf::Error& e) {
    std::fprintf(stderr, "batch_forge: %s\n", e.what());
    return e.code() == bf::ErrorCode::kInternal ? 70 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "batch_forge: unexpected error: %s\n", e.what());
    return 70;
  }
}
