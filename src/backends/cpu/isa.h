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
// "avx512" → kAvx512 …; throws Error(kInvalidArgument) on an unknown name. "amx" is kAvx512 too
// (see CpuLevel).
Isa parse_isa(std::string_view name);

// AMX-INT8 tiles (Sapphire Rapids and later) on top of kAvx512: the packed int8 matmuls run their
// blocks of 16 activation rows on the tile unit (linear_packed.cc). Needs the CPU's AMX-TILE and
// AMX-INT8 and the kernel's permission for the 8 KiB tile state (Linux: arch_prctl
// ARCH_REQ_XCOMP_PERM), asked once per process.
bool amx_supported();

// What BackendOptions::isa names: "" → the best this machine has (AMX where supported), "amx" →
// kAvx512 with AMX, "avx512" / "avx2" / "scalar" → that level without AMX.
struct CpuLevel {
  Isa isa = Isa::kScalar;
  bool amx = false;
};
CpuLevel parse_cpu_level(std::string_view name);
std::string_view level_name(CpuLevel level);  // "avx512+amx", "avx512", "avx2", "scalar"

}  // namespace bf::cpu

// Function attributes for per-ISA kernels.
#define BF_TARGET_AVX2 __attribute__((target("avx2,fma,f16c,bmi,bmi2,popcnt")))
#define BF_TARGET_AMX                                                                                      \
  __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c,bmi,bmi2," \
                        "popcnt")))
#define BF_TARGET_AVX512 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c,bmi,bmi2,popcnt")))
