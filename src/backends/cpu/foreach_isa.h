// Compiles the per-level code in the file named by BF_SIMD_INCLUDE once per ISA level, inside
// bf::cpu::simd::scalar, ::avx2 and ::avx512, where the Vec type and operations of simd.h are in
// scope. In that file BF_SIMD_FN is the level's target attribute, and every function must carry
// it (GCC does not inline a function with wider instructions into one without them). Usage, in a
// .cc after including simd.h:
//
//   #define BF_SIMD_INCLUDE "backends/cpu/norm-inl.h"
//   #include "backends/cpu/foreach_isa.h"
//
// then pick simd::scalar::f, simd::avx2::f or simd::avx512::f with simd::select_isa.
// No include guard on purpose: each use expands its own file.
#ifndef BF_SIMD_INCLUDE
#error "define BF_SIMD_INCLUDE before including backends/cpu/foreach_isa.h"
#endif

#define BF_SIMD_FN
namespace bf::cpu::simd::scalar {
#include BF_SIMD_INCLUDE
}  // namespace bf::cpu::simd::scalar
#undef BF_SIMD_FN

#define BF_SIMD_FN BF_TARGET_AVX2
namespace bf::cpu::simd::avx2 {
#include BF_SIMD_INCLUDE
}  // namespace bf::cpu::simd::avx2
#undef BF_SIMD_FN

#define BF_SIMD_FN BF_TARGET_AVX512
namespace bf::cpu::simd::avx512 {
#include BF_SIMD_INCLUDE
}  // namespace bf::cpu::simd::avx512
#undef BF_SIMD_FN

#undef BF_SIMD_INCLUDE
