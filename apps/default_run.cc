// `batch_forge` with no arguments: open the default model, check it completely and show it, then
// print the benchmark table (quick mode). Generation through the async loop joins this run with
// the transformer and server issues.
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "batch_forge/core/error.h"
#include "batch_forge/core/thread_pool.h"
#include "batch_forge/models/model.h"
#include "bench/bench.h"
#include "commands.h"

namespace bf::app {

int run_default(const DefaultRunOptions& options) {
  std::string path = options.model;
  if (path.empty()) {
    const char* env = std::getenv("BATCH_FORGE_MODEL");
    path = env && *env ? env : "models/default.safetensors";
  }
  if (!std::filesystem::exists(path))
    throw Error(ErrorCode::kNotFound, "batch_forge",
                cat("no model at '", path, "'; export the default one with\n  python python/export_eqx.py --out ", path,
                    "\nor name one with --model FILE (or $BATCH_FORGE_MODEL)"));

  const ModelFile model = open_model(path);  // throws with every problem listed
  const FamilyInfo* family = find_family(model.family());
  uint64_t bytes = 0;
  for (const TensorInfo* t : model.tensors()) bytes += t->nbytes();
  std::printf("batch_forge: loaded %s (format v%s)\n", model.path().c_str(), model.format_version().c_str());
  std::printf("  family   %s: %s\n", model.family().c_str(), family->describe(model.config()).c_str());
  std::printf("  weights  %zu tensors, %llu bytes, mapped without copying\n", model.tensors().size(),
              static_cast<unsigned long long>(bytes));
  std::printf("  threads  %d\n", ThreadPool::global().size());
  std::printf("\nbenchmarks (quick; `batch_forge bench` for the full table):\n");
  std::fflush(stdout);
  bench::Options bench_options;
  bench_options.quick = true;
  bench::print_table(bench::run(bench_options));
  return 0;
}

}  // namespace bf::app
