// exp2 for the attention kernels, one version per ISA level, all the same algorithm:
//   x ← clamp(x, −127, 127); n ← round-to-even(x); f ← x − n ∈ [−½, ½];
//   2^f ≈ 1 + c1·f + … + c6·f⁶ (Taylor coefficients ln2^k / k!; the first term left out, c7·f⁷,
//   is below 1.2e-7 at |f| = ½); 2^n is built in the exponent field, and n = −127 gives the
//   bits of 0.0, so −inf and everything below −126.5 come out as exactly 0 (attention never
//   needs them: a weight below 2^−126 of the largest one is lost in the sum anyway).
// The vector versions use FMA for the polynomial; the scalar one multiplies and adds (the
// backend is compiled with -ffp-contract=off), so results differ between ISA levels by an ulp or
// two but never between runs or thread counts.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "backends/cpu/isa.h"

namespace bf::cpu::attn {

inline constexpr float kExp2C1 = 0.693147180559945309f;
inline constexpr float kExp2C2 = 0.240226506959100712f;
inline constexpr float kExp2C3 = 0.0555041086648215800f;
inline constexpr float kExp2C4 = 0.00961812910762847716f;
inline constexpr float kExp2C5 = 0.00133335581464284434f;
inline constexpr float kExp2C6 = 0.000154035303933816099f;
inline constexpr float kLog2E = 1.44269504088896340736f;

inline float exp2_scalar(float x) {
  if (x != x) return x;           // NaN stays NaN, as in the vector versions (and never reaches the int cast)
  x = x < -127.0f ? -127.0f : x;  // also −inf
  x = x > 127.0f ? 127.0f : x;
  // Adding and removing 1.5·2^23 rounds to the nearest integer, ties to even, for |x| < 2^22.
  const float n = (x + 12582912.0f) - 12582912.0f;
  const float f = x - n;
  float p = kExp2C6;
  p = p * f + kExp2C5;
  p = p * f + kExp2C4;
  p = p * f + kExp2C3;
  p = p * f + kExp2C2;
  p = p * f + kExp2C1;
  p = p * f + 1.0f;
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

BF_TARGET_AVX2 inline __m256 exp2_avx2(__m256 x) {
  // max/min with the constant first: a NaN in x is passed through (the second operand wins).
  x = _mm256_max_ps(_mm256_set1_ps(-127.0f), x);
  x = _mm256_min_ps(_mm256_set1_ps(127.0f), x);
  const __m256 n = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 f = _mm256_sub_ps(x, n);
  __m256 p = _mm256_set1_ps(kExp2C6);
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(kExp2C5));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(kExp2C4));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(kExp2C3));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(kExp2C2));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(kExp2C1));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

BF_TARGET_AVX512 inline __m512 exp2_avx512(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(-127.0f), x);
  x = _mm512_min_ps(_mm512_set1_ps(127.0f), x);
  const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(x, n);
  __m512 p = _mm512_set1_ps(kExp2C6);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(kExp2C5));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(kExp2C4));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(kExp2C3));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(kExp2C2));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(kExp2C1));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}

}  // namespace bf::cpu::attn
