// Subcommands of the batch_forge CLI. Each returns the process exit code; errors from the library
// arrive as bf::Error and are printed by main().
#pragma once

#include <string>

namespace bf::app {

struct InspectOptions {
  std::string path;
  bool json = false;
};
// Exit 0: a valid file (a valid model, for a file with batch_forge metadata); 1: the file reads
// but is not a valid model (problems are listed); errors from the loader propagate.
int run_inspect(const InspectOptions& options);

struct DefaultRunOptions {
  std::string model;  // empty: $BATCH_FORGE_MODEL, else models/default.safetensors
};
// What `batch_forge` with no arguments does.
int run_default(const DefaultRunOptions& options);

}  // namespace bf::app
