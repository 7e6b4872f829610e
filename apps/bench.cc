// batch_forge bench: our kernels beside the vendor library, against this machine's roofline.
#include <cstdio>
#include <fstream>
#include <iostream>

#include "batch_forge/core/error.h"
#include "bench/bench.h"
#include "commands.h"

namespace bf::app {

KernelPreference parse_kernels(const std::string& name) {
  if (name == "vendor") return KernelPreference::kVendor;
  if (name == "custom") return KernelPreference::kCustom;
  if (name == "auto") return KernelPreference::kAuto;
  throw Error(ErrorCode::kInvalidArgument, "bench", cat("--kernels is '", name, "'; expected auto, vendor or custom"));
}

int run_bench(const BenchOptions& options) {
  bench::Options o;
  o.backend_options.kernels = parse_kernels(options.kernels);
  o.backend_options.threads = options.threads;
  o.backend_options.isa = options.isa;
  o.groups = options.groups;
  o.quick = options.quick;
  o.model = options.model;
  const bench::Report report = bench::run(o);
  const bool json_to_stdout = options.json && (options.json_path.empty() || options.json_path == "-");
  if (json_to_stdout) {
    std::cout << bench::to_json(report) << "\n";
    return 0;
  }
  bench::print_table(report);
  if (options.json) {
    std::ofstream out(options.json_path);
    if (!out) throw Error(ErrorCode::kIo, "bench", cat("cannot write '", options.json_path, "'"));
    out << bench::to_json(report) << "\n";
    std::printf("\nwrote %s\n", options.json_path.c_str());
  }
  return 0;
}

}  // namespace bf::app
