// The vector math of vec_math-inl.h, evaluated over arrays at a chosen ISA level: a hook for the
// accuracy tests (tests/conformance/vec_math_cases.cc), which hold it to the C library.
#pragma once

#include <cstdint>

#include "backends/cpu/isa.h"

namespace bf::cpu {

enum class VecMathFn {
  kExp,
  kErfc,
  kLog1pUnit,  // log(1 + x) for x in [0, 1]
  kSin,        // |x| ≤ 4e6
  kCos,
};

// y[i] = fn(x[i]) for i < n, with the functions kernels at `isa` use.
void eval_vec_math(Isa isa, VecMathFn fn, const float* x, float* y, int64_t n);

}  // namespace bf::cpu
