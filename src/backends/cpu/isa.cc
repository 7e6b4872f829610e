#include "backends/cpu/isa.h"

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "batch_forge/core/error.h"

namespace bf::cpu {

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
  }
  return "?";
}

bool isa_supported(Isa isa) {
  __builtin_cpu_init();
  switch (isa) {
    case Isa::kScalar: return true;
    case Isa::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    case Isa::kAvx512:
      return isa_supported(Isa::kAvx2) && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vnni");
  }
  return false;
}

Isa best_isa() {
  if (isa_supported(Isa::kAvx512)) return Isa::kAvx512;
  if (isa_supported(Isa::kAvx2)) return Isa::kAvx2;
  return Isa::kScalar;
}

Isa parse_isa(std::string_view name) {
  if (name == "amx") return Isa::kAvx512;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512})
    if (isa_name(isa) == name) return isa;
  throw Error(ErrorCode::kInvalidArgument, "cpu", cat("unknown ISA level '", name, "' (expected amx, avx512, avx2 or scalar)"));
}

namespace {

bool ask_for_amx() {
  if (!isa_supported(Isa::kAvx512)) return false;
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool tile = (d >> 24) & 1, int8 = (d >> 25) & 1;  // CPUID.(7,0):EDX AMX-TILE, AMX-INT8
  if (!tile || !int8) return false;
#if defined(__linux__)
  // The tile data state (XFEATURE 18) is off for a process until it asks; a kernel without AMX
  // support (before 5.16) refuses, and so do we then.
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureTileData = 18;
  if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureTileData) != 0) return false;
  // XCR0 must enable the tile config and data states (bits 17, 18).
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return ((lo >> 17) & 3) == 3;
#else
  return false;
#endif
}

}  // namespace

bool amx_supported() {
  static const bool supported = ask_for_amx();
  return supported;
}

CpuLevel parse_cpu_level(std::string_view name) {
  if (name.empty()) {
    const Isa isa = best_isa();
    return {isa, isa == Isa::kAvx512 && amx_supported()};
  }
  return {parse_isa(name), name == "amx"};
}

std::string_view level_name(CpuLevel level) { return level.amx ? "avx512+amx" : isa_name(level.isa); }

}  // namespace bf::cpu
