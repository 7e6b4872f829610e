// Built-in benchmarks (`batch_forge bench`, also part of the no-argument run). Benchmarks are not
// tests: they report numbers and assert nothing. Each op group registers a function that adds
// records; the driver measures this machine's read bandwidth and the vendor library's peak
// first, so every record can be put against the roofline in the same run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "batch_forge/backends/backend.h"

namespace bf::bench {

struct Machine {
  double read_gbps = 0;    // measured streaming read bandwidth, all threads, DRAM-sized buffer
  double peak_gflops = 0;  // vendor f32 GEMM at a large square shape, all threads
  int threads = 0;
  std::string isa;
  std::string vendor;  // "OpenBLAS ..."
};

struct Record {
  std::string op;      // "linear", "attention"
  std::string shape;   // "m=1 n=4096 k=4096", "seq=2048 hd=64 heads=8 causal"
  std::string dtype;   // weight dtype or "f32"
  std::string kernel;  // KernelInfo::name
  bool vendor = false;
  double seconds = 0;  // per call (median)
  double flops = 0;    // per call
  double bytes = 0;    // bytes that must move from DRAM per call (weights, KV, activations)
  double tokens = 0;   // tokens per call (model records); 0 for single ops
  // Derived by the driver:
  double gflops = 0, gbps = 0, roofline_fraction = 0;
  double speedup_vs_vendor = 0;  // vendor seconds / these seconds, same op and shape; 0 when none
};

struct Context {
  Backend& backend;  // kernels as --kernels chose (auto by default)
  const Machine& machine;
  KernelPreference kernels;  // what the user forced; a group runs the vendor and custom sides it
                             // is allowed to (auto: both, for the speedup column)
  bool quick = false;        // fewer shapes and repetitions (the no-argument run, tests)
  std::string model;         // a model file for the "model" group; empty: that group is skipped
  int threads = 0;           // as --threads

  bool run_vendor() const { return kernels != KernelPreference::kCustom; }
  bool run_custom() const { return kernels != KernelPreference::kVendor; }
};

using Group = std::function<void(Context&, std::vector<Record>&)>;

// Registers a group under a name ("linear", "attention"); called from static initializers in
// bench/<group>_bench.cc. Groups run in name order.
bool register_group(const char* name, Group group);

// Runs `fn` repeatedly: warms up, then times batches until at least `min_seconds` have passed (and
// at least 3 batches), and returns the median seconds per call. Call backend.synchronize() inside
// fn when the backend is asynchronous.
// `rotation`: how many calls one pass over the operand copies takes (copies_for_dram); the warm-up
// makes at least that many, so every copy has been read once before timing starts. On this
// project's VM the first read of memory that has sat idle for a while runs at half speed or less
// (a q4_0 4096² GEMV over 1.9 GB of copies: 1.0–1.7 ms per call in the first pass, 0.43–0.49 ms in
// every later one, whether the copies were written a moment or 8 s before), while a served model
// reads its weights every step; without the pass the 0.2 s timed here was mostly that first pass.
// The pass stops after 1 s: calls that slow (attention prefill at 4096 tokens) are compute bound.
double time_per_call(const std::function<void()>& fn, double min_seconds = 0.2, int rotation = 0);

// Enough copies of a `bytes`-sized operand that cycling through them streams from DRAM rather than
// from the last-level cache (working set ≥ 4 × L3, at least 2 copies).
int copies_for_dram(size_t bytes);

// Fills a buffer with deterministic pseudo-random f32 in [−1, 1).
void fill_random(float* data, size_t n, uint64_t seed);

struct Options {
  std::string backend = "cpu";
  BackendOptions backend_options;
  std::vector<std::string> groups;  // empty: all
  bool quick = false;
  std::string model;  // --model: also benchmark this model end to end (group "model")
  bool json = false;
};

struct Report {
  Machine machine;
  std::vector<Record> records;
};

// Measures the machine, runs the groups, derives the columns.
Report run(const Options& options);
void print_table(const Report& report);
std::string to_json(const Report& report);

}  // namespace bf::bench
