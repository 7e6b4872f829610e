// The benchmark driver: machine roofline (read bandwidth, vendor GEMM peak), timing, the group
// registry, the derived columns, the table and the JSON records.
#include "bench/bench.h"

#include <immintrin.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "backends/cpu/isa.h"
#include "batch_forge/core/error.h"
#include "batch_forge/core/thread_pool.h"

namespace bf::bench {
namespace {

using Clock = std::chrono::steady_clock;

std::map<std::string, Group>& registry() {
  static std::map<std::string, Group> groups;
  return groups;
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

size_t last_level_cache_bytes() {
  const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
  return l3 > 0 ? static_cast<size_t>(l3) : size_t{32} << 20;
}

// Sums floats; the sum is returned so the loads cannot be optimized away.
BF_TARGET_AVX512 float sum_avx512(const float* p, size_t n) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    a0 = _mm512_add_ps(a0, _mm512_load_ps(p + i));
    a1 = _mm512_add_ps(a1, _mm512_load_ps(p + i + 16));
    a2 = _mm512_add_ps(a2, _mm512_load_ps(p + i + 32));
    a3 = _mm512_add_ps(a3, _mm512_load_ps(p + i + 48));
  }
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
  float s = 0;
  for (float v : lanes) s += v;
  for (; i < n; ++i) s += p[i];
  return s;
}

BF_TARGET_AVX2 float sum_avx2(const float* p, size_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm256_add_ps(a0, _mm256_load_ps(p + i));
    a1 = _mm256_add_ps(a1, _mm256_load_ps(p + i + 8));
    a2 = _mm256_add_ps(a2, _mm256_load_ps(p + i + 16));
    a3 = _mm256_add_ps(a3, _mm256_load_ps(p + i + 24));
  }
  const __m256 a = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, a);
  float s = 0;
  for (float v : lanes) s += v;
  for (; i < n; ++i) s += p[i];
  return s;
}

float sum_scalar(const float* p, size_t n) {
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) s0 += p[i], s1 += p[i + 1], s2 += p[i + 2], s3 += p[i + 3];
  for (; i < n; ++i) s0 += p[i];
  return s0 + s1 + s2 + s3;
}

// Streaming read bandwidth over a buffer 16× the last-level cache, all threads, best of 5 passes.
double measure_read_gbps(Backend& backend, ThreadPool& pool, cpu::Isa isa) {
  // Several times the last-level cache, but no more than the 2 GiB the weight copies span
  // (copies_for_dram): past that, page walks over a larger buffer than any kernel here reads would
  // lower the roofline (seen with a 480 MB L3: 7.7 GB read 9–11 GB/s on one core, 2 GB 12.4).
  const size_t bytes = std::clamp<size_t>(last_level_cache_bytes() * 16, size_t{256} << 20, size_t{2} << 30);
  auto buffer = backend.allocate(bytes);
  auto* data = reinterpret_cast<float*>(buffer->data());
  const size_t n = bytes / sizeof(float);
  fill_random(data, n, 1);
  auto sum = [&](const float* p, size_t count) {
    switch (isa) {
      case cpu::Isa::kAvx512: return sum_avx512(p, count);
      case cpu::Isa::kAvx2: return sum_avx2(p, count);
      case cpu::Isa::kScalar: break;
    }
    return sum_scalar(p, count);
  };
  constexpr int64_t kChunk = 1 << 20;  // floats per work item: 4 MiB
  const int64_t items = static_cast<int64_t>((n + kChunk - 1) / kChunk);
  std::vector<float> partial(items);
  double best = 0;
  for (int pass = 0; pass < 5; ++pass) {
    const auto t0 = Clock::now();
    pool.parallel_for(items, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const size_t begin = static_cast<size_t>(i) * kChunk;
        partial[i] = sum(data + begin, std::min<size_t>(kChunk, n - begin));
      }
    });
    best = std::max(best, static_cast<double>(bytes) / seconds_since(t0) / 1e9);
  }
  volatile float sink = 0;
  for (float p : partial) sink = sink + p;
  return best;
}

// The vendor library's f32 GEMM through the backend's vendor path, at a shape large enough to be
// compute bound: this is the "peak" of the roofline.
double measure_peak_gflops(Backend& backend) {
  constexpr int64_t m = 1024, n = 2048, k = 2048;
  auto x = backend.allocate(m * k * 4), w = backend.allocate(n * k * 4), y = backend.allocate(m * n * 4);
  fill_random(reinterpret_cast<float*>(x->data()), m * k, 2);
  fill_random(reinterpret_cast<float*>(w->data()), n * k, 3);
  LinearArgs args;
  args.x = ConstTensorView::contiguous({x->data(), x->size()}, DType::kF32, Shape{m, k});
  args.weight = ConstTensorView::contiguous({w->data(), w->size()}, DType::kF32, Shape{n, k});
  args.y = TensorView::contiguous({y->data(), y->size()}, DType::kF32, Shape{m, n});
  const KernelPreference previous = backend.kernel_preference();
  backend.set_kernel_preference(KernelPreference::kVendor);
  double seconds = 0;
  try {
    seconds = time_per_call([&] { backend.linear(args); }, 0.3);
  } catch (const Error& e) {
    backend.set_kernel_preference(previous);
    throw Error(ErrorCode::kInternal, "bench", cat("cannot measure the vendor GEMM peak: ", e.what()));
  }
  backend.set_kernel_preference(previous);
  return 2.0 * m * n * k / seconds / 1e9;
}

void derive(Report& report) {
  const Machine& mc = report.machine;
  for (Record& r : report.records) {
    r.gflops = r.flops / r.seconds / 1e9;
    r.gbps = r.bytes / r.seconds / 1e9;
    const double roofline_seconds = std::max(r.bytes / (mc.read_gbps * 1e9), r.flops / (mc.peak_gflops * 1e9));
    r.roofline_fraction = roofline_seconds / r.seconds;
  }
  // Speedup against the vendor record of the same op and shape: the f32 one if there is one (the
  // issue's baseline: OpenBLAS f32), else the vendor record of the same dtype.
  for (Record& r : report.records) {
    if (r.vendor) continue;
    const Record* same_dtype = nullptr;
    const Record* f32 = nullptr;
    for (const Record& v : report.records) {
      if (!v.vendor || v.op != r.op || v.shape != r.shape) continue;
      if (v.dtype == "f32") f32 = &v;
      if (v.dtype == r.dtype) same_dtype = &v;
    }
    const Record* base = f32 ? f32 : same_dtype;
    if (base) r.speedup_vs_vendor = base->seconds / r.seconds;
  }
}

std::string human_seconds(double s) {
  char buf[32];
  if (s < 1e-3)
    std::snprintf(buf, sizeof buf, "%.1f us", s * 1e6);
  else if (s < 1)
    std::snprintf(buf, sizeof buf, "%.2f ms", s * 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.2f s", s);
  return buf;
}

}  // namespace

bool register_group(const char* name, Group group) {
  registry()[name] = std::move(group);
  return true;
}

double time_per_call(const std::function<void()>& fn, double min_seconds, int rotation) {
  // Warm-up: first-touch page faults, caches, lazily built tables, one pass over the copies.
  const auto w0 = Clock::now();
  int warm = 0;
  do {
    fn();
    ++warm;
  } while ((seconds_since(w0) < 0.02 && warm < 100) || (warm < rotation && seconds_since(w0) < 1.0));
  const double estimate = seconds_since(w0) / warm;
  // Batches of ~min_seconds/5 each; at least 3 batches; median per-call time.
  const int per_batch = std::max(1, static_cast<int>(min_seconds / 5 / std::max(estimate, 1e-9)));
  std::vector<double> samples;
  const auto t0 = Clock::now();
  while (samples.size() < 3 || seconds_since(t0) < min_seconds) {
    const auto b0 = Clock::now();
    for (int i = 0; i < per_batch; ++i) fn();
    samples.push_back(seconds_since(b0) / per_batch);
    if (samples.size() >= 1000) break;
  }
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

int copies_for_dram(size_t bytes) {
  if (bytes == 0) return 1;
  const size_t want = 4 * last_level_cache_bytes();
  const size_t cap = size_t{2} << 30;  // never more than 2 GiB of copies
  size_t copies = std::max<size_t>(2, (want + bytes - 1) / bytes);
  copies = std::min(copies, std::max<size_t>(2, cap / bytes));
  return static_cast<int>(copies);
}

void fill_random(float* data, size_t n, uint64_t seed) {
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; ++i) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;  // xorshift64
    data[i] = static_cast<float>(static_cast<int64_t>(s >> 40) - (int64_t{1} << 23)) / static_cast<float>(1 << 23);
  }
}

Report run(const Options& options) {
  std::unique_ptr<Backend> backend = create_backend(options.backend, options.backend_options);
  Report report;
  Machine& mc = report.machine;
  const cpu::CpuLevel level = cpu::parse_cpu_level(options.backend_options.isa);
  const cpu::Isa isa = level.isa;
  ThreadPool pool(options.backend_options.threads > 0 ? options.backend_options.threads
                                                      : ThreadPool::default_thread_count());
  mc.threads = pool.size();
  mc.isa = std::string(cpu::level_name(level));
  mc.vendor = backend->description();
  mc.read_gbps = measure_read_gbps(*backend, pool, isa);
  mc.peak_gflops = measure_peak_gflops(*backend);

  for (const std::string& g : options.groups)
    if (!registry().contains(g)) {
      std::string known;
      for (const auto& [name, fn] : registry()) known += (known.empty() ? "" : ", ") + name;
      throw Error(ErrorCode::kInvalidArgument, "bench", cat("unknown group '", g, "' (known: ", known, ")"));
    }
  Context ctx{
      *backend, mc, options.backend_options.kernels, options.quick, options.model, options.backend_options.threads};
  for (const auto& [name, group] : registry()) {
    if (!options.groups.empty() &&
        std::find(options.groups.begin(), options.groups.end(), name) == options.groups.end())
      continue;
    backend->set_kernel_preference(options.backend_options.kernels);
    group(ctx, report.records);
  }
  derive(report);
  return report;
}

void print_table(const Report& report) {
  const Machine& mc = report.machine;
  std::printf("machine   %s\n", mc.vendor.c_str());
  std::printf("roofline  read bandwidth %.1f GB/s (measured, %d threads); vendor f32 GEMM peak %.1f GFLOP/s\n",
              mc.read_gbps, mc.threads, mc.peak_gflops);
  size_t shape_w = 5, kernel_w = 6;
  for (const Record& r : report.records) {
    shape_w = std::max(shape_w, r.shape.size());
    kernel_w = std::max(kernel_w, r.kernel.size());
  }
  const int sw = static_cast<int>(shape_w), kw = static_cast<int>(kernel_w);
  bool any_tokens = false;
  for (const Record& r : report.records) any_tokens |= r.tokens > 0;
  std::printf("\n%-10s %-*s %-8s %-*s %-7s %10s %10s %9s %9s %9s%s\n", "op", sw, "shape", "dtype", kw, "kernel", "side",
              "time", "GFLOP/s", "GB/s", "roofline", "vs vendor", any_tokens ? "     tok/s" : "");
  for (const Record& r : report.records) {
    char speedup[16] = "";
    if (r.speedup_vs_vendor > 0) std::snprintf(speedup, sizeof speedup, "%.2fx", r.speedup_vs_vendor);
    char tps[24] = "";
    if (r.tokens > 0) std::snprintf(tps, sizeof tps, " %9.1f", r.tokens / r.seconds);
    std::printf("%-10s %-*s %-8s %-*s %-7s %10s %10.1f %9.1f %8.0f%% %9s%s\n", r.op.c_str(), sw, r.shape.c_str(),
                r.dtype.c_str(), kw, r.kernel.c_str(), r.vendor ? "vendor" : "custom", human_seconds(r.seconds).c_str(),
                r.gflops, r.gbps, 100 * r.roofline_fraction, speedup, tps);
  }
}

std::string to_json(const Report& report) {
  const Machine& mc = report.machine;
  nlohmann::json out;
  out["machine"] = {{"read_gbps", mc.read_gbps},
                    {"peak_gflops", mc.peak_gflops},
                    {"threads", mc.threads},
                    {"isa", mc.isa},
                    {"backend", mc.vendor}};
  auto& records = out["records"] = nlohmann::json::array();
  for (const Record& r : report.records)
    records.push_back({{"op", r.op},
                       {"shape", r.shape},
                       {"dtype", r.dtype},
                       {"kernel", r.kernel},
                       {"side", r.vendor ? "vendor" : "custom"},
                       {"seconds", r.seconds},
                       {"flops", r.flops},
                       {"bytes", r.bytes},
                       {"gflops", r.gflops},
                       {"gbps", r.gbps},
                       {"roofline_fraction", r.roofline_fraction},
                       {"speedup_vs_vendor", r.speedup_vs_vendor},
                       {"tokens_per_second", r.tokens > 0 ? r.tokens / r.seconds : 0.0},
                       {"read_gbps", mc.read_gbps},
                       {"peak_gflops", mc.peak_gflops}});
  return out.dump(2);
}

}  // namespace bf::bench
