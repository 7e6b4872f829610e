// SIMD vectors for the CPU kernels, one namespace per ISA level: simd::scalar (plain x86-64: 4
// portable lanes), simd::avx2 (8 lanes), simd::avx512 (16 lanes). Each offers the same small set of
// operations on `Vec` (floats), `VecI` (int32) and `Mask`, every function marked with its level's
// target attribute, so kernel code written once against that set (a *-inl.h file, compiled once
// per level through foreach_isa.h) becomes three functions, and the backend picks one per op call.
//
// Semantics shared by all levels (kernels rely on them):
//   min(a, b) / max(a, b)  return b when either is NaN (the x86 minps / maxps rule);
//   mul_add(a, b, c)       is a·b + c rounded once (FMA; the scalar level goes through double,
//                          whose product is exact);
//   ldexp_int(a, n)        is a · 2^n for integral n in [−150, 128], rounded once into the
//                          subnormals and overflowing to inf (vscalefps on AVX-512);
//   reduce_sum / max       combine lanes in a fixed order (results depend on the level only);
//   load_partial / store_partial touch only the first n lanes' memory (0 < n < kLanes).
//
// After the three namespaces, vec_math-inl.h adds, per level, what is built from these: load_n /
// store_n, exp, erfc, log1p on [0, 1], sin and cos.
#pragma once

// GCC 12 reports its own _mm512_undefined_ps() as "may be used uninitialized" wherever an
// AVX-512 intrinsic built on it is inlined (GCC bug 105593, fixed in GCC 13). The state of this
// warning is taken at the intrinsic's line, so it is turned off around the include.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#include <cmath>
#include <cstdint>
#include <cstring>

#include "backends/cpu/isa.h"
#include "ops/convert.h"

#define BF_INLINE inline __attribute__((always_inline))

namespace bf::cpu::simd {

// The function of the ISA level in use: chosen once per op call, never per element.
template <typename Fn>
Fn select_isa(Isa isa, Fn scalar_fn, Fn avx2_fn, Fn avx512_fn) {
  switch (isa) {
    case Isa::kAvx512: return avx512_fn;
    case Isa::kAvx2: return avx2_fn;
    case Isa::kScalar: break;
  }
  return scalar_fn;
}

// ---------------------------------------------------------------------------------------------
namespace scalar {

// Plain x86-64 has SSE2 but no FMA, F16C, blends or masked loads. This level works on a portable
// vector of 4 lanes, one plain loop per operation: the lanes are independent chains the CPU (and
// the compiler, with SSE2) can overlap, where a single lane would make every exp one long chain
// of dependent operations (about 2× slower, measured).
inline constexpr int kLanes = 4;
struct Vec {
  float v[4];
};
struct VecI {
  int32_t v[4];
};
struct Mask {
  bool m[4];
};

// r with lane i set by f(r, i), for each lane.
template <typename R, typename F>
BF_INLINE R each_lane(F&& f) {
  R r;
  for (int i = 0; i < 4; ++i) f(r, i);
  return r;
}

BF_INLINE Vec set1(float x) { return {{x, x, x, x}}; }
BF_INLINE Vec zero() { return set1(0.0f); }
BF_INLINE Vec iota() { return {{0.0f, 1.0f, 2.0f, 3.0f}}; }  // lane indices
BF_INLINE Vec load(const float* p) { return {{p[0], p[1], p[2], p[3]}}; }
BF_INLINE void store(float* p, Vec a) {
  for (int i = 0; i < 4; ++i) p[i] = a.v[i];
}
BF_INLINE Vec load_partial(const float* p, int64_t n) {
  Vec r = zero();
  for (int64_t i = 0; i < n; ++i) r.v[i] = p[i];
  return r;
}
BF_INLINE void store_partial(float* p, Vec a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) p[i] = a.v[i];
}
BF_INLINE Vec load_f16(const void* p) {
  uint16_t h[4];
  std::memcpy(h, p, sizeof h);
  return each_lane<Vec>([&](Vec& r, int i) { r.v[i] = f16_to_f32(h[i]); });
}
BF_INLINE Vec load_bf16(const void* p) {
  uint16_t h[4];
  std::memcpy(h, p, sizeof h);
  return each_lane<Vec>([&](Vec& r, int i) { r.v[i] = bf16_to_f32(h[i]); });
}

BF_INLINE Vec operator+(Vec a, Vec b) {
  return each_lane<Vec>([&](Vec& r, int i) { r.v[i] = a.v[i] + b.v[i]; });
}
BF_INLINE Vec operator-(Vec a, Vec b) {
  return each_lane<Vec>([&](Vec& r, int i) { r.v[i] = a.v[i] - b.v[i]; });
}
BF_INLINE Vec operator*(Vec a, Vec b) {
  return each_lane<Vec>([&](Vec& r, int i) { r.v[i] = a.v[i] * b.v[i]; });
}
BF_INLINE Vec operator/(Vec a, Vec b) {
  return each_lane<Vec>([&](Vec& r, int i) { r.v[i] = a.v[i] / b.v[i]; });
}
BF_INLINE Vec operator-(Vec a) {
  return each_lane<Vec>([&](Vec& r, int i) { r.v[i] = -a.v[i]; });
}
// Fused through double: the product of two floats is exact there; the sum rounds to double, then
// to float (a double rounding that differs from an FMA only in rare halfway cases).
BF_INLINE Vec mul_add(Vec a, Vec b, Vec c) {
  return each_lane<Vec>(
      [&](Vec& r, int i) { r.v[i] = static_cast<float>(static_cast<double>(a.v[i]) * b.v[i] + c.v[i]); });
}
BF_INLINE Vec min(Vec a, Vec b) {
  return each_lane<Vec>([&](Vec& r, int i) { r.v[i] = a.v[i] < b.v[i] ? a.v[i] : b.v[i]; });
}
BF_INLINE Vec max(Vec a, Vec b) {
  return each_lane<Vec>([&](Vec& r, int i) { r.v[i] = a.v[i] > b.v[i] ? a.v[i] : b.v[i]; });
}
BF_INLINE Vec abs(Vec a) {
  return each_lane<Vec>([&](Vec& r, int i) { r.v[i] = std::fabs(a.v[i]); });
}
BF_INLINE Vec sqrt(Vec a) {
  return each_lane<Vec>([&](Vec& r, int i) { r.v[i] = std::sqrt(a.v[i]); });
}
// To nearest, ties to even, for |a| < 2^22: adding 1.5·2^23 leaves no fraction bits (SSE2 has no
// roundps, and std::nearbyint is a library call). IEEE semantics keep the compiler from folding
// the pair away (nothing in this project builds with -ffast-math).
BF_INLINE Vec round(Vec a) {
  return each_lane<Vec>([&](Vec& r, int i) { r.v[i] = (a.v[i] + 12582912.0f) - 12582912.0f; });
}
// Truncates, as cvttps2dq; a NaN or out-of-range lane gives INT32_MIN, as it does (rather than UB).
BF_INLINE VecI to_int(Vec a) {
  return each_lane<VecI>(
      [&](VecI& r, int i) { r.v[i] = std::fabs(a.v[i]) < 2147483520.0f ? static_cast<int32_t>(a.v[i]) : INT32_MIN; });
}
// Two factors 2^(n/2), each a normal float, so that the product rounds once into the subnormals.
BF_INLINE Vec ldexp_int(Vec a, Vec n) {
  const VecI ni = to_int(n);
  return each_lane<Vec>([&](Vec& r, int i) {
    const auto n_all = static_cast<uint32_t>(ni.v[i]), n1 = static_cast<uint32_t>(ni.v[i] >> 1);
    r.v[i] = a.v[i] * bits_to_f32((n1 + 127u) << 23) * bits_to_f32((n_all - n1 + 127u) << 23);
  });
}

BF_INLINE VecI set1_i(int32_t x) { return {{x, x, x, x}}; }
// Integer lanes wrap around like the vector instructions (through unsigned: never UB).
BF_INLINE VecI operator+(VecI a, VecI b) {
  return each_lane<VecI>([&](VecI& r, int i) {
    r.v[i] = static_cast<int32_t>(static_cast<uint32_t>(a.v[i]) + static_cast<uint32_t>(b.v[i]));
  });
}
BF_INLINE VecI operator-(VecI a, VecI b) {
  return each_lane<VecI>([&](VecI& r, int i) {
    r.v[i] = static_cast<int32_t>(static_cast<uint32_t>(a.v[i]) - static_cast<uint32_t>(b.v[i]));
  });
}
BF_INLINE VecI operator&(VecI a, VecI b) {
  return each_lane<VecI>([&](VecI& r, int i) { r.v[i] = a.v[i] & b.v[i]; });
}
BF_INLINE VecI operator^(VecI a, VecI b) {
  return each_lane<VecI>([&](VecI& r, int i) { r.v[i] = a.v[i] ^ b.v[i]; });
}
template <int kBits>
BF_INLINE VecI shift_left(VecI a) {
  return each_lane<VecI>(
      [&](VecI& r, int i) { r.v[i] = static_cast<int32_t>(static_cast<uint32_t>(a.v[i]) << kBits); });
}
template <int kBits>
BF_INLINE VecI shift_right(VecI a) {  // arithmetic (C++20)
  return each_lane<VecI>([&](VecI& r, int i) { r.v[i] = a.v[i] >> kBits; });
}
BF_INLINE Vec as_float(VecI a) {
  return each_lane<Vec>([&](Vec& r, int i) { r.v[i] = bits_to_f32(static_cast<uint32_t>(a.v[i])); });
}
BF_INLINE VecI as_int(Vec a) {
  return each_lane<VecI>([&](VecI& r, int i) { r.v[i] = static_cast<int32_t>(f32_to_bits(a.v[i])); });
}

BF_INLINE Mask operator<(Vec a, Vec b) {
  return each_lane<Mask>([&](Mask& r, int i) { r.m[i] = a.v[i] < b.v[i]; });
}
BF_INLINE Mask nonzero(VecI a) {
  return each_lane<Mask>([&](Mask& r, int i) { r.m[i] = a.v[i] != 0; });
}
BF_INLINE Vec select(Mask m, Vec a, Vec b) {
  return each_lane<Vec>([&](Vec& r, int i) { r.v[i] = m.m[i] ? a.v[i] : b.v[i]; });
}

// Lanes combined as (0 + 2) + (1 + 3), always in this order.
BF_INLINE float reduce_sum(Vec a) { return (a.v[0] + a.v[2]) + (a.v[1] + a.v[3]); }
BF_INLINE float reduce_max(Vec a) {
  const float even = a.v[0] > a.v[2] ? a.v[0] : a.v[2], odd = a.v[1] > a.v[3] ? a.v[1] : a.v[3];
  return even > odd ? even : odd;
}

}  // namespace scalar

// ---------------------------------------------------------------------------------------------
namespace avx2 {

#define BF_T BF_TARGET_AVX2 BF_INLINE

inline constexpr int kLanes = 8;
struct Vec {
  __m256 v;
};
struct VecI {
  __m256i v;
};
struct Mask {
  __m256 m;
};  // all-ones lanes where true

BF_T Vec set1(float x) { return {_mm256_set1_ps(x)}; }
BF_T Vec zero() { return {_mm256_setzero_ps()}; }
BF_T Vec iota() { return {_mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7)}; }
BF_T Vec load(const float* p) { return {_mm256_loadu_ps(p)}; }
BF_T void store(float* p, Vec a) { _mm256_storeu_ps(p, a.v); }
BF_T __m256i first_lanes(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
BF_T Vec load_partial(const float* p, int64_t n) { return {_mm256_maskload_ps(p, first_lanes(n))}; }
BF_T void store_partial(float* p, Vec a, int64_t n) { _mm256_maskstore_ps(p, first_lanes(n), a.v); }
BF_T Vec load_f16(const void* p) { return {_mm256_cvtph_ps(_mm_loadu_si128(static_cast<const __m128i*>(p)))}; }
BF_T Vec load_bf16(const void* p) {
  const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(static_cast<const __m128i*>(p)));
  return {_mm256_castsi256_ps(_mm256_slli_epi32(wide, 16))};
}

BF_T Vec operator+(Vec a, Vec b) { return {_mm256_add_ps(a.v, b.v)}; }
BF_T Vec operator-(Vec a, Vec b) { return {_mm256_sub_ps(a.v, b.v)}; }
BF_T Vec operator*(Vec a, Vec b) { return {_mm256_mul_ps(a.v, b.v)}; }
BF_T Vec operator/(Vec a, Vec b) { return {_mm256_div_ps(a.v, b.v)}; }
BF_T Vec operator-(Vec a) { return {_mm256_xor_ps(a.v, _mm256_set1_ps(-0.0f))}; }
BF_T Vec mul_add(Vec a, Vec b, Vec c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
BF_T Vec min(Vec a, Vec b) { return {_mm256_min_ps(a.v, b.v)}; }
BF_T Vec max(Vec a, Vec b) { return {_mm256_max_ps(a.v, b.v)}; }
BF_T Vec abs(Vec a) { return {_mm256_andnot_ps(_mm256_set1_ps(-0.0f), a.v)}; }
BF_T Vec sqrt(Vec a) { return {_mm256_sqrt_ps(a.v)}; }
BF_T Vec round(Vec a) { return {_mm256_round_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
BF_T VecI to_int(Vec a) { return {_mm256_cvttps_epi32(a.v)}; }
BF_T Vec ldexp_int(Vec a, Vec n) {
  const __m256i ni = _mm256_cvttps_epi32(n.v), n1 = _mm256_srai_epi32(ni, 1), bias = _mm256_set1_epi32(127);
  const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, n1), bias), 23));
  return {_mm256_mul_ps(_mm256_mul_ps(a.v, s1), s2)};
}

BF_T VecI set1_i(int32_t x) { return {_mm256_set1_epi32(x)}; }
BF_T VecI operator+(VecI a, VecI b) { return {_mm256_add_epi32(a.v, b.v)}; }
BF_T VecI operator-(VecI a, VecI b) { return {_mm256_sub_epi32(a.v, b.v)}; }
BF_T VecI operator&(VecI a, VecI b) { return {_mm256_and_si256(a.v, b.v)}; }
BF_T VecI operator^(VecI a, VecI b) { return {_mm256_xor_si256(a.v, b.v)}; }
template <int kBits>
BF_T VecI shift_left(VecI a) {
  return {_mm256_slli_epi32(a.v, kBits)};
}
template <int kBits>
BF_T VecI shift_right(VecI a) {
  return {_mm256_srai_epi32(a.v, kBits)};
}
BF_T Vec as_float(VecI a) { return {_mm256_castsi256_ps(a.v)}; }
BF_T VecI as_int(Vec a) { return {_mm256_castps_si256(a.v)}; }

BF_T Mask operator<(Vec a, Vec b) { return {_mm256_cmp_ps(a.v, b.v, _CMP_LT_OQ)}; }
BF_T Mask nonzero(VecI a) {
  return {
      _mm256_castsi256_ps(_mm256_xor_si256(_mm256_cmpeq_epi32(a.v, _mm256_setzero_si256()), _mm256_set1_epi32(-1)))};
}
BF_T Vec select(Mask m, Vec a, Vec b) { return {_mm256_blendv_ps(b.v, a.v, m.m)}; }

// Lanes combined as ((0+4)+(2+6)) + ((1+5)+(3+7)), always in this order.
BF_T float reduce_sum(Vec a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
BF_T float reduce_max(Vec a) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

#undef BF_T
}  // namespace avx2

// ---------------------------------------------------------------------------------------------
namespace avx512 {

#define BF_T BF_TARGET_AVX512 BF_INLINE

inline constexpr int kLanes = 16;
struct Vec {
  __m512 v;
};
struct VecI {
  __m512i v;
};
struct Mask {
  __mmask16 m;
};

BF_T Vec set1(float x) { return {_mm512_set1_ps(x)}; }
BF_T Vec zero() { return {_mm512_setzero_ps()}; }
BF_T Vec iota() { return {_mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)}; }
BF_T Vec load(const float* p) { return {_mm512_loadu_ps(p)}; }
BF_T void store(float* p, Vec a) { _mm512_storeu_ps(p, a.v); }
BF_T __mmask16 first_lanes(int64_t n) { return static_cast<__mmask16>((1u << n) - 1); }
BF_T Vec load_partial(const float* p, int64_t n) { return {_mm512_maskz_loadu_ps(first_lanes(n), p)}; }
BF_T void store_partial(float* p, Vec a, int64_t n) { _mm512_mask_storeu_ps(p, first_lanes(n), a.v); }
BF_T Vec load_f16(const void* p) { return {_mm512_cvtph_ps(_mm256_loadu_si256(static_cast<const __m256i*>(p)))}; }
BF_T Vec load_bf16(const void* p) {
  const __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(static_cast<const __m256i*>(p)));
  return {_mm512_castsi512_ps(_mm512_slli_epi32(wide, 16))};
}

BF_T Vec operator+(Vec a, Vec b) { return {_mm512_add_ps(a.v, b.v)}; }
BF_T Vec operator-(Vec a, Vec b) { return {_mm512_sub_ps(a.v, b.v)}; }
BF_T Vec operator*(Vec a, Vec b) { return {_mm512_mul_ps(a.v, b.v)}; }
BF_T Vec operator/(Vec a, Vec b) { return {_mm512_div_ps(a.v, b.v)}; }
BF_T Vec operator-(Vec a) { return {_mm512_xor_ps(a.v, _mm512_set1_ps(-0.0f))}; }
BF_T Vec mul_add(Vec a, Vec b, Vec c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
BF_T Vec min(Vec a, Vec b) { return {_mm512_min_ps(a.v, b.v)}; }
BF_T Vec max(Vec a, Vec b) { return {_mm512_max_ps(a.v, b.v)}; }
BF_T Vec abs(Vec a) { return {_mm512_abs_ps(a.v)}; }
BF_T Vec sqrt(Vec a) { return {_mm512_sqrt_ps(a.v)}; }
BF_T Vec round(Vec a) { return {_mm512_roundscale_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
BF_T VecI to_int(Vec a) { return {_mm512_cvttps_epi32(a.v)}; }
BF_T Vec ldexp_int(Vec a, Vec n) { return {_mm512_scalef_ps(a.v, n.v)}; }  // one instruction, exact

BF_T VecI set1_i(int32_t x) { return {_mm512_set1_epi32(x)}; }
BF_T VecI operator+(VecI a, VecI b) { return {_mm512_add_epi32(a.v, b.v)}; }
BF_T VecI operator-(VecI a, VecI b) { return {_mm512_sub_epi32(a.v, b.v)}; }
BF_T VecI operator&(VecI a, VecI b) { return {_mm512_and_si512(a.v, b.v)}; }
BF_T VecI operator^(VecI a, VecI b) { return {_mm512_xor_si512(a.v, b.v)}; }
template <int kBits>
BF_T VecI shift_left(VecI a) {
  return {_mm512_slli_epi32(a.v, kBits)};
}
template <int kBits>
BF_T VecI shift_right(VecI a) {
  return {_mm512_srai_epi32(a.v, kBits)};
}
BF_T Vec as_float(VecI a) { return {_mm512_castsi512_ps(a.v)}; }
BF_T VecI as_int(Vec a) { return {_mm512_castps_si512(a.v)}; }

BF_T Mask operator<(Vec a, Vec b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_LT_OQ)}; }
BF_T Mask nonzero(VecI a) { return {_mm512_test_epi32_mask(a.v, a.v)}; }
BF_T Vec select(Mask m, Vec a, Vec b) { return {_mm512_mask_blend_ps(m.m, b.v, a.v)}; }

// Halves, then the AVX2 order on the 8 remaining lanes.
BF_T float reduce_sum(Vec a) {
  const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(a.v), _mm512_extractf32x8_ps(a.v, 1));
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
BF_T float reduce_max(Vec a) {
  const __m256 h = _mm256_max_ps(_mm512_castps512_ps256(a.v), _mm512_extractf32x8_ps(a.v, 1));
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

#undef BF_T
}  // namespace avx512
}  // namespace bf::cpu::simd

// Per level: load_n / store_n, exp, erfc, log1p on [0, 1], sin and cos.
#define BF_SIMD_INCLUDE "backends/cpu/vec_math-inl.h"
#include "backends/cpu/foreach_isa.h"
