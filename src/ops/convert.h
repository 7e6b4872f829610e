// Scalar conversions between f32 and the narrow float types, bit-exact with numpy / ml_dtypes
// (round to nearest even). Kernels use SIMD versions of these; these are the definitions.
#pragma once

#include <cstdint>
#include <cstring>

namespace bf {

inline float bits_to_f32(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
inline uint32_t f32_to_bits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return bits;
}

// IEEE half → f32 (exact).
inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t{h & 0x8000u} << 16;
  const uint32_t exp = (h >> 10) & 0x1F;
  uint32_t mant = h & 0x3FF;
  if (exp == 0x1F) return bits_to_f32(sign | 0x7F800000u | (mant << 13));  // inf / nan
  if (exp != 0) return bits_to_f32(sign | ((exp + 112) << 23) | (mant << 13));
  if (mant == 0) return bits_to_f32(sign);  // ±0
  // Subnormal half: normalize.
  int e = -1;
  do {
    mant <<= 1;
    ++e;
  } while ((mant & 0x400) == 0);
  return bits_to_f32(sign | ((112 - e) << 23) | ((mant & 0x3FF) << 13));
}

// f32 → IEEE half, round to nearest even; overflow → ±inf; NaN stays NaN.
inline uint16_t f32_to_f16(float f) {
  const uint32_t x = f32_to_bits(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t abs = x & 0x7FFFFFFFu;
  if (abs > 0x7F800000u) {  // NaN: keep the top payload bits, as numpy does; never turn it into inf
    const uint32_t payload = (abs >> 13) & 0x3FF;
    return static_cast<uint16_t>(sign | 0x7C00u | (payload ? payload : 1u));
  }
  if (abs >= 0x47800000u) return static_cast<uint16_t>(sign | 0x7C00u);  // ≥ 65536 (after rounding: inf)
  if (abs < 0x38800000u) {  // below the smallest normal half (2^-14): subnormal or zero
    if (abs < 0x33000000u) return static_cast<uint16_t>(sign);  // < 2^-25 rounds to 0
    const uint32_t e = abs >> 23;
    const uint32_t m = (abs & 0x7FFFFFu) | 0x800000u;
    const uint32_t shift = 126 - e;  // 14 + (127 - e) - 1 ... places the value in units of 2^-24
    const uint32_t q = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    const uint32_t r = q + (rem > half || (rem == half && (q & 1)));
    return static_cast<uint16_t>(sign | r);
  }
  // Normal: rebias the exponent and round the mantissa to 10 bits.
  const uint32_t q = (abs - 0x38000000u) >> 13;
  const uint32_t rem = abs & 0x1FFFu;
  const uint32_t r = q + (rem > 0x1000u || (rem == 0x1000u && (q & 1)));
  return static_cast<uint16_t>(sign | r);  // a carry into the exponent is the correct rounding (up to inf)
}

inline float bf16_to_f32(uint16_t b) { return bits_to_f32(uint32_t{b} << 16); }

// f32 → bf16, round to nearest even; NaN becomes the canonical quiet NaN (as ml_dtypes).
inline uint16_t f32_to_bf16(float f) {
  const uint32_t x = f32_to_bits(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>(((x >> 16) & 0x8000u) | 0x7FC0u);
  return static_cast<uint16_t>((x + 0x7FFFu + ((x >> 16) & 1)) >> 16);
}

// fp8 e4m3fn (no infinities; 0x7F / 0xFF are NaN) → f32 (exact).
inline float f8e4m3_to_f32(uint8_t v) {
  const uint32_t sign = uint32_t{v & 0x80u} << 24;
  const uint32_t exp = (v >> 3) & 0xF;
  const uint32_t mant = v & 0x7;
  if (exp == 0xF && mant == 0x7) return bits_to_f32(sign | 0x7FC00000u);
  if (exp == 0) {  // subnormal: mant · 2^-9
    return bits_to_f32(sign) + (sign ? -1.0f : 1.0f) * static_cast<float>(mant) * (1.0f / 512.0f);
  }
  return bits_to_f32(sign | ((exp + 120) << 23) | (mant << 20));
}

// fp8 e5m2 → f32 (exact): the top byte of an IEEE half.
inline float f8e5m2_to_f32(uint8_t v) { return f16_to_f32(static_cast<uint16_t>(uint16_t{v} << 8)); }

}  // namespace bf
