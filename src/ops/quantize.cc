// Quantizers, one block at a time (docs/quantization.md). Offline code: written for exactness and
// for matching numpy bit for bit, not for speed. Every step is one IEEE f32 operation that numpy
// performs the same way (no fused multiply-adds, no reassociation, no reciprocal where the spec
// divides), which is what keeps the bytes identical to python/batch_forge/quant.py.
#include "ops/quantize.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "batch_forge/core/error.h"
#include "batch_forge/ops/quant.h"
#include "ops/convert.h"

namespace bf::ops {
namespace {

constexpr std::string_view kComponent = "quantize";

constexpr std::array<QuantSchemeInfo, 4> kSchemes = {{
    {"q8_0", DType::kQ8_0, BlockQ8_0::kBlock, sizeof(BlockQ8_0)},
    {"q4_0", DType::kQ4_0, BlockQ4_0::kBlock, sizeof(BlockQ4_0)},
    {"nf4", DType::kNF4, BlockNF4::kBlock, sizeof(BlockNF4)},
    {"fp8_e4m3", DType::kF8E4M3, 1, 1},
}};

bool f16_is_inf(uint16_t h) { return (h & 0x7FFFu) == 0x7C00u; }

// The largest |x| of a block, and why its f16 scale overflowed: the message a user sees.
[[noreturn]] void scale_overflow(QuantScheme scheme, int64_t column, float amax, const char* limit) {
  throw Error(ErrorCode::kInvalidArgument, kComponent,
              cat("the block at column ", column, " has max |x| = ", amax, ": its ", quant_scheme_info(scheme).name,
                  " scale overflows f16 (", limit, ")"));
}

// The quantizer's view of a stored f16 scale: the value the dequantizer will multiply by, and its
// reciprocal (0 for a zero scale, so an all-zero block quantizes to zeros instead of NaN).
struct Scale {
  uint16_t bits;
  float inverse;
};
Scale f16_scale(float d) {
  const uint16_t bits = f32_to_f16(d);
  const float stored = f16_to_f32(bits);
  return {bits, stored != 0.0f ? 1.0f / stored : 0.0f};
}

// x: [32]. d = amax / 127; q = clamp(rint(x · (1 / f16(d))), −127, 127).
void quantize_q8_0(const float* x, int64_t column, std::byte* out) {
  float amax = 0.0f;
  for (int i = 0; i < BlockQ8_0::kBlock; ++i) amax = std::max(amax, std::fabs(x[i]));
  const Scale s = f16_scale(amax / 127.0f);
  if (f16_is_inf(s.bits)) scale_overflow(QuantScheme::kQ8_0, column, amax, "max |x| must stay below 8.3e6");
  BlockQ8_0 b;
  b.d = s.bits;
  for (int i = 0; i < BlockQ8_0::kBlock; ++i) {
    const float q = std::clamp(std::nearbyint(x[i] * s.inverse), -127.0f, 127.0f);
    b.qs[i] = static_cast<int8_t>(q);
  }
  std::memcpy(out, &b, sizeof b);  // `out` may sit at any byte offset of a row
}

// x: [32]. m = the value of largest magnitude (the first on ties), d = m / −8, so m itself maps to
// q = 0 and the full range [−8, 7] is used on m's side; q = clamp(rint(x / f16(d)) + 8, 0, 15).
void quantize_q4_0(const float* x, int64_t column, std::byte* out) {
  float amax = std::fabs(x[0]);
  float m = x[0];
  for (int i = 1; i < BlockQ4_0::kBlock; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      m = x[i];
    }
  }
  const Scale s = f16_scale(m / -8.0f);
  if (f16_is_inf(s.bits)) scale_overflow(QuantScheme::kQ4_0, column, amax, "max |x| must stay below 524160");
  std::array<uint8_t, BlockQ4_0::kBlock> q;
  for (int i = 0; i < BlockQ4_0::kBlock; ++i)
    q[i] = static_cast<uint8_t>(std::clamp(std::nearbyint(x[i] * s.inverse) + 8.0f, 0.0f, 15.0f));
  BlockQ4_0 b;
  b.d = s.bits;
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(q[j] | (q[j + 16] << 4));
  std::memcpy(out, &b, sizeof b);
}

// x: [64]. s = f16(absmax); code = the index of the NF4 level nearest x / s (the lower index on a
// tie of the f32 distances). A zero scale gives v = 0, whose nearest level is index 7 (exact 0).
void quantize_nf4(const float* x, int64_t column, std::byte* out) {
  float amax = 0.0f;
  for (int i = 0; i < BlockNF4::kBlock; ++i) amax = std::max(amax, std::fabs(x[i]));
  const uint16_t bits = f32_to_f16(amax);
  if (f16_is_inf(bits)) scale_overflow(QuantScheme::kNF4, column, amax, "max |x| must stay below 65520");
  const float s = f16_to_f32(bits);
  std::array<uint8_t, BlockNF4::kBlock> code;
  for (int i = 0; i < BlockNF4::kBlock; ++i) {
    const float v = s != 0.0f ? x[i] / s : 0.0f;
    int best = 0;
    float best_dist = std::fabs(v - kNf4Values[0]);
    for (int c = 1; c < 16; ++c) {
      const float dist = std::fabs(v - kNf4Values[c]);
      if (dist < best_dist) {  // strict: ties keep the lower index, as np.argmin
        best = c;
        best_dist = dist;
      }
    }
    code[i] = static_cast<uint8_t>(best);
  }
  BlockNF4 b;
  b.absmax = bits;
  for (int j = 0; j < 32; ++j) b.qs[j] = static_cast<uint8_t>(code[j] | (code[j + 32] << 4));
  std::memcpy(out, &b, sizeof b);
}

// x: [k]. scale = amax / 448; code = e4m3fn(clamp(x / scale, −448, 448)).
float quantize_fp8(std::span<const float> x, std::byte* out) {
  float amax = 0.0f;
  for (float v : x) amax = std::max(amax, std::fabs(v));
  const float scale = amax / kFp8E4M3Max;
  for (size_t i = 0; i < x.size(); ++i) {
    const float v = scale != 0.0f ? std::clamp(x[i] / scale, -kFp8E4M3Max, kFp8E4M3Max) : 0.0f;
    out[i] = static_cast<std::byte>(f32_to_f8e4m3(v));
  }
  return scale;
}

}  // namespace

const QuantSchemeInfo& quant_scheme_info(QuantScheme scheme) { return kSchemes[static_cast<size_t>(scheme)]; }

std::optional<QuantScheme> quant_scheme_from_name(std::string_view name) {
  for (size_t i = 0; i < kSchemes.size(); ++i)
    if (kSchemes[i].name == name) return static_cast<QuantScheme>(i);
  return std::nullopt;
}

int64_t quantized_row_bytes(QuantScheme scheme, int64_t k) {
  const QuantSchemeInfo& info = quant_scheme_info(scheme);
  if (k < 0 || k % info.block != 0)
    throw Error(ErrorCode::kInvalidArgument, kComponent,
                cat("a row of ", k, " values cannot be quantized to ", info.name,
                    ": k must be a multiple of its block (", info.block, ")"));
  return k / info.block * info.block_bytes;
}

uint8_t f32_to_f8e4m3(float x) {
  const uint32_t bits = f32_to_bits(x);
  const auto sign = static_cast<uint8_t>((bits >> 24) & 0x80u);
  const uint32_t abs = bits & 0x7FFFFFFFu;
  if (abs >= 0x7F800000u) return sign | 0x7F;  // NaN and ±inf: e4m3fn has no infinity
  if (abs >= 0x3C800000u) {
    // Normal range of e4m3fn (≥ 2^-6): keep 3 of the 23 mantissa bits, round half to even, then
    // rebias the exponent (127 → 7). A carry out of the mantissa correctly bumps the exponent.
    const uint32_t rem = abs & 0xFFFFFu;
    uint32_t q = abs >> 20;
    q += (rem > 0x80000u || (rem == 0x80000u && (q & 1)));
    const uint32_t code = q - ((127u - 7u) << 3);
    return code > 0x7Eu ? (sign | 0x7F) : static_cast<uint8_t>(sign | code);  // above 448 → NaN
  }
  // Subnormal e4m3fn: multiples of 2^-9 below 2^-6. Anything ≤ 2^-10 (half the smallest step,
  // ties to the even 0) is a signed zero; f32 subnormals are far below that.
  if (abs <= 0x3A800000u) return sign;
  const uint32_t e = abs >> 23;                      // 117 … 120 here
  const uint32_t m = (abs & 0x7FFFFFu) | 0x800000u;  // 24 significant bits
  const uint32_t shift = 141 - e;                    // m · 2^(e − 150) in units of 2^-9
  const uint32_t rem = m & ((1u << shift) - 1);
  const uint32_t half = 1u << (shift - 1);
  uint32_t q = m >> shift;
  q += (rem > half || (rem == half && (q & 1)));  // q = 8 is 2^-6, the smallest normal: still right
  return static_cast<uint8_t>(sign | q);
}

float quantize_row(QuantScheme scheme, std::span<const float> x, std::span<std::byte> out) {
  const auto k = static_cast<int64_t>(x.size());
  const int64_t need = quantized_row_bytes(scheme, k);
  if (static_cast<int64_t>(out.size()) != need)
    throw Error(ErrorCode::kInvalidArgument, kComponent,
                cat("a ", quant_scheme_info(scheme).name, " row of ", k, " values takes ", need,
                    " bytes; the output holds ", out.size()));
  for (int64_t i = 0; i < k; ++i)
    if (!std::isfinite(x[i]))
      throw Error(ErrorCode::kInvalidArgument, kComponent,
                  cat("value at column ", i, " is ", x[i], "; only finite weights can be quantized"));

  const QuantSchemeInfo& info = quant_scheme_info(scheme);
  for (int64_t j = 0; scheme != QuantScheme::kFp8E4M3 && j < k / info.block; ++j) {
    const float* block = x.data() + j * info.block;
    std::byte* dst = out.data() + j * info.block_bytes;
    switch (scheme) {
      case QuantScheme::kQ8_0: quantize_q8_0(block, j * info.block, dst); break;
      case QuantScheme::kQ4_0: quantize_q4_0(block, j * info.block, dst); break;
      case QuantScheme::kNF4: quantize_nf4(block, j * info.block, dst); break;
      case QuantScheme::kFp8E4M3: break;
    }
  }
  return scheme == QuantScheme::kFp8E4M3 ? quantize_fp8(x, out.data()) : 1.0f;
}

}  // namespace bf::ops
