#include "backends/cpu/vec_math.h"

#include "backends/cpu/simd.h"

#define BF_SIMD_INCLUDE "backends/cpu/vec_math_eval-inl.h"
#include "backends/cpu/foreach_isa.h"

namespace bf::cpu {

void eval_vec_math(Isa isa, VecMathFn fn, const float* x, float* y, int64_t n) {
  simd::select_isa(isa, &simd::scalar::eval_math, &simd::avx2::eval_math, &simd::avx512::eval_math)(fn, x, y, n);
}

}  // namespace bf::cpu
