// Run-time ISA dispatch for CPU kernels. Kernels for each level live in the same file, each
// function marked with its target attribute (so no translation unit is compiled for an ISA the
// machine may lack, and shared inline code is never emitted with wider instructions); the
// backend picks a level once, at construction, and every op call dispatches on it once.
#pragma once

#include <string_view>

namespace bf::cpu {

enum class Isa {
  kScalar,  // plain x86-64 (SSE2)
  kAvx2,    // AVX2 + FMA + F16C
  kAvx512,  // AVX-512 F/BW/VL/DQ + VNNI (+ FMA, F16C)
};

std::string_view isa_name(Isa isa);  // "scalar", "avx2", "avx512"
bool isa_supported(Isa isa);         // by this CPU (and OS)
Isa best_isa();                      // the highest supported level
// "avx512" → kAvx512 …; throws Error(kInvalidArgument) on an unknown name.
Isa parse_isa(std::string_view name);

}  // namespace bf::cpu

// Function attributes for per-ISA kernels.
#define BF_TARGET_AVX2 __attribute__((target("avx2,fma,f16c,bmi,bmi2,popcnt")))
#define BF_TARGET_AVX512 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c,bmi,bmi2,popcnt")))
