// Weight rows of any type → f32, per ISA: the vendor path (dequantize, then sgemm) and the float
// GEMM panels use these. Values equal ops::dequantize_row bit for bit: every conversion is exact
// except the one product with the block (or fp8 row) scale, which is rounded once as there.
#include <immintrin.h>

#include <cstring>

#include "backends/cpu/linear_internal.h"
#include "batch_forge/core/error.h"
#include "batch_forge/ops/quant.h"
#include "ops/convert.h"

// GCC 12's AVX-512 intrinsics start from _mm512_undefined_*(), a self-initialized value that its
// flow analysis reports as "may be used uninitialized" inside target-attributed functions.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace bf::cpu::lin {
namespace {

uint16_t load_u16(const std::byte* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);  // rows of a file need not be 2-byte aligned
  return v;
}

// f8_e4m3 → f32 through IEEE half: (v & 0x7F) << 7 (sign moved to bit 15) is a half of value
// f8(v) / 2⁸ for every finite code, normal or subnormal, which F16C converts exactly; multiplying
// by 2⁸ is exact too. Codes 0x7F / 0xFF are NaN. (Blocks are read through byte pointers: rows of a
// file need not be aligned for the block structs.)
constexpr float kFp8HalfFactor = 256.0f;

constexpr int64_t kQ8Bytes = sizeof(BlockQ8_0), kQ4Bytes = sizeof(BlockQ4_0), kNf4Bytes = sizeof(BlockNF4);

}  // namespace

// ---- scalar ----------------------------------------------------------------------------------

void dequant_scalar(DType t, const std::byte* row, int64_t k0, int64_t len, float row_scale, float* out) {
  switch (t) {
    case DType::kF32: std::memcpy(out, row + k0 * 4, len * 4); return;
    case DType::kF16:
      for (int64_t i = 0; i < len; ++i) out[i] = f16_to_f32(load_u16(row + (k0 + i) * 2));
      return;
    case DType::kBF16:
      for (int64_t i = 0; i < len; ++i) out[i] = bf16_to_f32(load_u16(row + (k0 + i) * 2));
      return;
    case DType::kF8E4M3: {
      const auto* p = reinterpret_cast<const uint8_t*>(row) + k0;
      for (int64_t i = 0; i < len; ++i) out[i] = f8e4m3_to_f32(p[i]) * row_scale;
      return;
    }
    case DType::kQ8_0: {
      const std::byte* b = row + k0 / 32 * kQ8Bytes;
      for (int64_t j = 0; j < len / 32; ++j, out += 32, b += kQ8Bytes) {
        const float d = f16_to_f32(load_u16(b));
        const auto* qs = reinterpret_cast<const int8_t*>(b + 2);
        for (int i = 0; i < 32; ++i) out[i] = static_cast<float>(qs[i]) * d;
      }
      return;
    }
    case DType::kQ4_0: {
      const std::byte* b = row + k0 / 32 * kQ4Bytes;
      for (int64_t j = 0; j < len / 32; ++j, out += 32, b += kQ4Bytes) {
        const float d = f16_to_f32(load_u16(b));
        const auto* qs = reinterpret_cast<const uint8_t*>(b + 2);
        for (int i = 0; i < 16; ++i) {
          out[i] = static_cast<float>((qs[i] & 0xF) - 8) * d;
          out[i + 16] = static_cast<float>((qs[i] >> 4) - 8) * d;
        }
      }
      return;
    }
    case DType::kNF4: {
      const std::byte* b = row + k0 / 64 * kNf4Bytes;
      for (int64_t j = 0; j < len / 64; ++j, out += 64, b += kNf4Bytes) {
        const float d = f16_to_f32(load_u16(b));
        const auto* qs = reinterpret_cast<const uint8_t*>(b + 2);
        for (int i = 0; i < 32; ++i) {
          out[i] = kNf4Values[qs[i] & 0xF] * d;
          out[i + 32] = kNf4Values[qs[i] >> 4] * d;
        }
      }
      return;
    }
    default: break;
  }
  BF_CHECK(false, "dequant of weight type ", dtype_name(t));
}

// ---- AVX2 ------------------------------------------------------------------------------------

namespace {

BF_TARGET_AVX2 inline __m256 fp8_to_f32_avx2(__m128i bytes8) {  // 8 codes in the low 64 bits
  const __m128i u = _mm_cvtepu8_epi16(bytes8);
  const __m128i h = _mm_or_si128(_mm_slli_epi16(_mm_and_si128(u, _mm_set1_epi16(0x7F)), 7),
                                 _mm_slli_epi16(_mm_and_si128(u, _mm_set1_epi16(0x80)), 8));
  return _mm256_cvtph_ps(h);
}

// 16-entry table lookup of 8 indices in [0, 16): two 8-entry permutes, chosen by bit 3.
BF_TARGET_AVX2 inline __m256 lut16_avx2(__m256i idx, __m256 lo8, __m256 hi8) {
  const __m256 high = _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28));  // bit 3 → sign bit
  return _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo8, idx), _mm256_permutevar8x32_ps(hi8, idx), high);
}

}  // namespace

BF_TARGET_AVX2 void dequant_avx2(DType t, const std::byte* row, int64_t k0, int64_t len, float row_scale, float* out) {
  int64_t i = 0;
  switch (t) {
    case DType::kF32: std::memcpy(out, row + k0 * 4, len * 4); return;
    case DType::kF16: {
      const std::byte* p = row + k0 * 2;
      for (; i + 8 <= len; i += 8)
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i * 2))));
      for (; i < len; ++i) out[i] = f16_to_f32(load_u16(p + i * 2));
      return;
    }
    case DType::kBF16: {
      const std::byte* p = row + k0 * 2;
      for (; i + 8 <= len; i += 8) {
        const __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i * 2)));
        _mm256_storeu_ps(out + i, _mm256_castsi256_ps(_mm256_slli_epi32(u, 16)));
      }
      for (; i < len; ++i) out[i] = bf16_to_f32(load_u16(p + i * 2));
      return;
    }
    case DType::kF8E4M3: {
      const auto* p = reinterpret_cast<const uint8_t*>(row) + k0;
      const __m256 f8 = _mm256_set1_ps(kFp8HalfFactor), s = _mm256_set1_ps(row_scale);
      const __m128i nan_code = _mm_set1_epi8(0x7F);
      for (; i + 8 <= len; i += 8) {
        const __m128i v = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + i));
        if (_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_and_si128(v, nan_code), nan_code)) & 0xFF) break;  // NaN codes: scalar
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(fp8_to_f32_avx2(v), f8), s));
      }
      for (; i < len; ++i) out[i] = f8e4m3_to_f32(p[i]) * row_scale;
      return;
    }
    case DType::kQ8_0: {
      const std::byte* b = row + k0 / 32 * kQ8Bytes;
      for (int64_t j = 0; j < len / 32; ++j, out += 32, b += kQ8Bytes) {
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(load_u16(b)));
        for (int h = 0; h < 4; ++h) {
          const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b + 2 + 8 * h));
          _mm256_storeu_ps(out + 8 * h, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), d));
        }
      }
      return;
    }
    case DType::kQ4_0: {
      const std::byte* b = row + k0 / 32 * kQ4Bytes;
      const __m256i eight = _mm256_set1_epi32(8), low = _mm256_set1_epi32(0xF);
      for (int64_t j = 0; j < len / 32; ++j, out += 32, b += kQ4Bytes) {
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(load_u16(b)));
        for (int h = 0; h < 2; ++h) {
          const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b + 2 + 8 * h)));
          const __m256i lo = _mm256_sub_epi32(_mm256_and_si256(v, low), eight);
          const __m256i hi = _mm256_sub_epi32(_mm256_srli_epi32(v, 4), eight);
          _mm256_storeu_ps(out + 8 * h, _mm256_mul_ps(_mm256_cvtepi32_ps(lo), d));
          _mm256_storeu_ps(out + 16 + 8 * h, _mm256_mul_ps(_mm256_cvtepi32_ps(hi), d));
        }
      }
      return;
    }
    case DType::kNF4: {
      const std::byte* b = row + k0 / 64 * kNf4Bytes;
      const __m256 lut_lo = _mm256_loadu_ps(kNf4Values), lut_hi = _mm256_loadu_ps(kNf4Values + 8);
      const __m256i low = _mm256_set1_epi32(0xF);
      for (int64_t j = 0; j < len / 64; ++j, out += 64, b += kNf4Bytes) {
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(load_u16(b)));
        for (int h = 0; h < 4; ++h) {
          const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b + 2 + 8 * h)));
          const __m256 lo = lut16_avx2(_mm256_and_si256(v, low), lut_lo, lut_hi);
          const __m256 hi = lut16_avx2(_mm256_srli_epi32(v, 4), lut_lo, lut_hi);
          _mm256_storeu_ps(out + 8 * h, _mm256_mul_ps(lo, d));
          _mm256_storeu_ps(out + 32 + 8 * h, _mm256_mul_ps(hi, d));
        }
      }
      return;
    }
    default: break;
  }
  BF_CHECK(false, "dequant of weight type ", dtype_name(t));
}

// ---- AVX-512 ---------------------------------------------------------------------------------

BF_TARGET_AVX512 void dequant_avx512(DType t, const std::byte* row, int64_t k0, int64_t len, float row_scale,
                                     float* out) {
  switch (t) {
    case DType::kF32: std::memcpy(out, row + k0 * 4, len * 4); return;
    case DType::kF16:
    case DType::kBF16: {
      const std::byte* p = row + k0 * 2;
      for (int64_t i = 0; i < len; i += 16) {
        const __mmask16 mask = len - i >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (len - i)) - 1);
        const __m256i h = _mm256_maskz_loadu_epi16(mask, p + i * 2);
        const __m512 f = t == DType::kF16 ? _mm512_cvtph_ps(h)
                                          : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
        _mm512_mask_storeu_ps(out + i, mask, f);
      }
      return;
    }
    case DType::kF8E4M3: {
      const auto* p = reinterpret_cast<const uint8_t*>(row) + k0;
      const __m512 f8 = _mm512_set1_ps(kFp8HalfFactor), s = _mm512_set1_ps(row_scale);
      const __m512 nan = _mm512_set1_ps(__builtin_nanf(""));
      for (int64_t i = 0; i < len; i += 16) {
        const __mmask16 mask = len - i >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (len - i)) - 1);
        const __m256i u = _mm256_cvtepu8_epi16(_mm_maskz_loadu_epi8(mask, p + i));
        const __m256i mag = _mm256_and_si256(u, _mm256_set1_epi16(0x7F));
        const __m256i h = _mm256_or_si256(_mm256_slli_epi16(mag, 7),
                                          _mm256_slli_epi16(_mm256_and_si256(u, _mm256_set1_epi16(0x80)), 8));
        __m512 f = _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtph_ps(h), f8), s);
        f = _mm512_mask_blend_ps(_mm256_cmpeq_epi16_mask(mag, _mm256_set1_epi16(0x7F)), f, nan);
        _mm512_mask_storeu_ps(out + i, mask, f);
      }
      return;
    }
    case DType::kQ8_0: {
      const std::byte* b = row + k0 / 32 * kQ8Bytes;
      for (int64_t j = 0; j < len / 32; ++j, out += 32, b += kQ8Bytes) {
        const __m512 d = _mm512_set1_ps(_cvtsh_ss(load_u16(b)));
        for (int h = 0; h < 2; ++h) {
          const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 2 + 16 * h));
          _mm512_storeu_ps(out + 16 * h, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)), d));
        }
      }
      return;
    }
    case DType::kQ4_0: {
      const std::byte* b = row + k0 / 32 * kQ4Bytes;
      const __m512i eight = _mm512_set1_epi32(8), low = _mm512_set1_epi32(0xF);
      for (int64_t j = 0; j < len / 32; ++j, out += 32, b += kQ4Bytes) {
        const __m512 d = _mm512_set1_ps(_cvtsh_ss(load_u16(b)));
        const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 2)));
        const __m512i lo = _mm512_sub_epi32(_mm512_and_si512(v, low), eight);
        const __m512i hi = _mm512_sub_epi32(_mm512_srli_epi32(v, 4), eight);
        _mm512_storeu_ps(out, _mm512_mul_ps(_mm512_cvtepi32_ps(lo), d));
        _mm512_storeu_ps(out + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(hi), d));
      }
      return;
    }
    case DType::kNF4: {
      const std::byte* b = row + k0 / 64 * kNf4Bytes;
      const __m512 lut = _mm512_loadu_ps(kNf4Values);
      const __m512i low = _mm512_set1_epi32(0xF);
      for (int64_t j = 0; j < len / 64; ++j, out += 64, b += kNf4Bytes) {
        const __m512 d = _mm512_set1_ps(_cvtsh_ss(load_u16(b)));
        for (int h = 0; h < 2; ++h) {
          const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 2 + 16 * h)));
          _mm512_storeu_ps(out + 16 * h, _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_and_si512(v, low), lut), d));
          _mm512_storeu_ps(out + 32 + 16 * h, _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), lut), d));
        }
      }
      return;
    }
    default: break;
  }
  BF_CHECK(false, "dequant of weight type ", dtype_name(t));
}

DequantFn dequant_for(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return dequant_avx512;
    case Isa::kAvx2: return dequant_avx2;
    case Isa::kScalar: break;
  }
  return dequant_scalar;
}

}  // namespace bf::cpu::lin
