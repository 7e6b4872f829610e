#include "conformance.h"

#include "backends/cpu/isa.h"

namespace bf::conformance {

std::vector<BackendVariant> backend_variants() {
  std::vector<BackendVariant> out;
  for (const std::string& name : available_backends()) {
    if (name != "cpu") {
      BackendVariant v;
      v.backend = v.label = name;
      out.push_back(std::move(v));
      continue;
    }
    // AMX tiles only change the packed int8 matmuls of 16 rows and more: one thread count.
    if (cpu::amx_supported()) {
      BackendOptions options;
      options.isa = "amx";
      options.threads = 3;
      out.push_back({name, options, cat(name, "_amx_t3")});
    }
    for (cpu::Isa isa : {cpu::Isa::kAvx512, cpu::Isa::kAvx2, cpu::Isa::kScalar}) {
      if (!cpu::isa_supported(isa)) continue;
      for (int threads : {1, 3}) {
        BackendOptions options;
        options.isa = std::string(cpu::isa_name(isa));
        options.threads = threads;
        out.push_back({name, options, cat(name, "_", cpu::isa_name(isa), "_t", threads)});
      }
    }
  }
  return out;
}

Backend& BackendTest::backend() {
  if (!backend_) backend_ = create_backend(GetParam().backend, GetParam().options);
  return *backend_;
}

std::vector<float> random_normal(size_t n, uint64_t seed, float scale) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

INSTANTIATE_TEST_SUITE_P(Backends, BackendTest, ::testing::ValuesIn(backend_variants()),
                         [](const ::testing::TestParamInfo<BackendVariant>& info) { return info.param.label; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(BackendTest);

}  // namespace bf::conformance
