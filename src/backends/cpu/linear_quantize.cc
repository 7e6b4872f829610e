// Activations → int8 blocks of 32 with one f32 scale per block (linear_internal.h has the
// definition), then arranged for the kernel that reads them. Every ISA computes the same bytes:
// the scale is max|x| / 127 and q = round-to-nearest-even(x · (127 / max)), in f32.
//
// A block holding a NaN or an infinity gets q = 0 and a NaN scale, so the outputs it touches are
// NaN (the f32 reference gives NaN or ±inf there) instead of garbage from converting NaN to int.
// Cost: O(m·k), against the O(m·n·k) of the product; one pass per row, rows over the pool.
#include <immintrin.h>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>

#include "backends/cpu/linear_internal.h"

// GCC 12's AVX-512 intrinsics start from _mm512_undefined_*(), a self-initialized value that its
// flow analysis reports as "may be used uninitialized" inside target-attributed functions.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace bf::cpu::lin {
namespace {

constexpr int kBlock = 32;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// One row of k values into q[k] (k order), dx[nb] and sum[nb] (Σ q per block).
void quantize_row_scalar(const float* x, int64_t nb, int8_t* q, float* dx, int32_t* sum) {
  for (int64_t b = 0; b < nb; ++b, x += kBlock, q += kBlock) {
    float amax = 0;
    bool finite = true;
    for (int i = 0; i < kBlock; ++i) {
      const float a = std::fabs(x[i]);
      finite &= a <= FLT_MAX;
      amax = a > amax ? a : amax;
    }
    const float id = finite && amax > 0 ? 127.0f / amax : 0.0f;
    int32_t s = 0;
    for (int i = 0; i < kBlock; ++i) {
      q[i] = finite ? static_cast<int8_t>(std::nearbyint(x[i] * id)) : 0;  // default rounding: to nearest even
      s += q[i];
    }
    dx[b] = finite ? amax / 127.0f : kNaN;
    sum[b] = s;
  }
}

BF_TARGET_AVX2 void quantize_row_avx2(const float* x, int64_t nb, int8_t* q, float* dx, int32_t* sum) {
  const __m256 sign = _mm256_set1_ps(-0.0f), fmax = _mm256_set1_ps(FLT_MAX);
  for (int64_t b = 0; b < nb; ++b, x += kBlock, q += kBlock) {
    __m256 v[4], amax = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
    for (int t = 0; t < 4; ++t) {
      v[t] = _mm256_loadu_ps(x + 8 * t);
      const __m256 a = _mm256_andnot_ps(sign, v[t]);
      bad = _mm256_or_ps(bad, _mm256_cmp_ps(a, fmax, _CMP_NLE_UQ));  // NaN or ±inf
      amax = _mm256_max_ps(amax, a);
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float max = _mm_cvtss_f32(m4);
    const bool finite = _mm256_movemask_ps(bad) == 0;
    const __m256 id = _mm256_set1_ps(finite && max > 0 ? 127.0f / max : 0.0f);
    __m256i s = _mm256_setzero_si256();
    __m256i qi[4];
    for (int t = 0; t < 4; ++t) {
      if (!finite) v[t] = _mm256_setzero_ps();              // NaN · 0 would convert to INT_MIN
      qi[t] = _mm256_cvtps_epi32(_mm256_mul_ps(v[t], id));  // MXCSR default: nearest even
      s = _mm256_add_epi32(s, qi[t]);
    }
    // int32 → int8 keeping k order: packs work per 128-bit lane, so undo their interleave.
    const __m256i p01 = _mm256_packs_epi32(qi[0], qi[1]), p23 = _mm256_packs_epi32(qi[2], qi[3]);
    const __m256i p =
        _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p01, p23), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), p);
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
    dx[b] = finite ? max / 127.0f : kNaN;
    sum[b] = _mm_cvtsi128_si32(s4);
  }
}

BF_TARGET_AVX512 void quantize_blocks_avx512(const float* x, int64_t nb, int8_t* q, float* dx, int32_t* sum) {
  const __m512 fmax = _mm512_set1_ps(FLT_MAX);
  for (int64_t b = 0; b < nb; ++b, x += kBlock, q += kBlock) {
    __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
    const __m512 a0 = _mm512_abs_ps(v0), a1 = _mm512_abs_ps(v1);
    const bool finite = (_mm512_cmp_ps_mask(a0, fmax, _CMP_NLE_UQ) | _mm512_cmp_ps_mask(a1, fmax, _CMP_NLE_UQ)) == 0;
    if (!finite) v0 = v1 = _mm512_setzero_ps();  // NaN · 0 would convert to INT_MIN
    const float max = _mm512_reduce_max_ps(_mm512_max_ps(a0, a1));
    const __m512 id = _mm512_set1_ps(finite && max > 0 ? 127.0f / max : 0.0f);
    const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, id)), q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, id));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q), _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 16), _mm512_cvtepi32_epi8(q1));
    dx[b] = finite ? max / 127.0f : kNaN;
    sum[b] = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
  }
}

// Lane j of the result: the max (or int32 sum) of the 16 lanes of v[j], exact in any order. Four rounds of shuffles
// halve the vectors while folding their lanes, then one permutation puts block j at lane j: 46 instructions for 16
// blocks, against 8 for each block's own reduction.
template <bool kAdd>  // integer add of int32 lanes, else max of floats
BF_TARGET_AVX512 inline __m512 combine(__m512 u, __m512 v) {
  return kAdd ? _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(u), _mm512_castps_si512(v)))
              : _mm512_max_ps(u, v);
}

template <bool kAdd>
BF_TARGET_AVX512 inline __m512 reduce16(const __m512 (&v)[16]) {
  constexpr auto op = combine<kAdd>;
  __m512 w[8], x[4], y[2];
  for (int i = 0; i < 8; ++i)  // 128-bit quarters: [a0 ∘ a2, a1 ∘ a3, b0 ∘ b2, b1 ∘ b3]
    w[i] = op(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x44), _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xEE));
  for (int i = 0; i < 4; ++i)  // quarter c: vector 4i + c's 4 partial lanes
    x[i] = op(_mm512_shuffle_f32x4(w[2 * i], w[2 * i + 1], 0x88), _mm512_shuffle_f32x4(w[2 * i], w[2 * i + 1], 0xDD));
  for (int i = 0; i < 2; ++i)  // within quarters: 2 lanes each of two vectors
    y[i] = op(_mm512_shuffle_ps(x[2 * i], x[2 * i + 1], 0x44), _mm512_shuffle_ps(x[2 * i], x[2 * i + 1], 0xEE));
  const __m512 z = op(_mm512_shuffle_ps(y[0], y[1], 0x88), _mm512_shuffle_ps(y[0], y[1], 0xDD));
  // Lane 4c + p of z holds vector c + 4p.
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  return _mm512_permutexvar_ps(order, z);
}

// 16 blocks at a time: the per-block maxima and sums reduced together (reduce16), the scales
// divided as one vector — the same IEEE operations per block as quantize_blocks_avx512, so the
// same bytes. A group of blocks holding a NaN or an infinity takes the block-by-block path.
BF_TARGET_AVX512 void quantize_row_avx512(const float* x, int64_t nb, int8_t* q, float* dx, int32_t* sum) {
  const __m512 fmax = _mm512_set1_ps(FLT_MAX);
  int64_t b = 0;
  for (; b + 16 <= nb; b += 16) {
    const float* xb = x + b * kBlock;
    __m512 amax[16];
    __mmask16 bad = 0;
    for (int j = 0; j < 16; ++j) {
      const __m512 a0 = _mm512_abs_ps(_mm512_loadu_ps(xb + kBlock * j));
      const __m512 a1 = _mm512_abs_ps(_mm512_loadu_ps(xb + kBlock * j + 16));
      bad |= _mm512_cmp_ps_mask(a0, fmax, _CMP_NLE_UQ) | _mm512_cmp_ps_mask(a1, fmax, _CMP_NLE_UQ);
      amax[j] = _mm512_max_ps(a0, a1);
    }
    if (bad != 0) {
      quantize_blocks_avx512(xb, 16, q + b * kBlock, dx + b, sum + b);
      continue;
    }
    const __m512 max = reduce16<false>(amax);
    const __mmask16 positive = _mm512_cmp_ps_mask(max, _mm512_setzero_ps(), _CMP_GT_OQ);
    alignas(64) float id[16];
    _mm512_store_ps(id, _mm512_maskz_div_ps(positive, _mm512_set1_ps(127.0f), max));
    _mm512_storeu_ps(dx + b, _mm512_div_ps(max, _mm512_set1_ps(127.0f)));
    __m512 s[16];
    for (int j = 0; j < 16; ++j) {
      const __m512 d = _mm512_set1_ps(id[j]);
      const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xb + kBlock * j), d));
      const __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xb + kBlock * j + 16), d));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + (b + j) * kBlock), _mm512_cvtepi32_epi8(q0));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + (b + j) * kBlock + 16), _mm512_cvtepi32_epi8(q1));
      s[j] = _mm512_castsi512_ps(_mm512_add_epi32(q0, q1));
    }
    const __m512 total = reduce16<true>(s);
    _mm512_storeu_si512(sum + b, _mm512_castps_si512(total));
  }
  quantize_blocks_avx512(x + b * kBlock, nb - b, q + b * kBlock, dx + b, sum + b);
}

using QuantizeRowFn = void (*)(const float* x, int64_t nb, int8_t* q, float* dx, int32_t* sum);

QuantizeRowFn quantize_row_for(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return quantize_row_avx512;
    case Isa::kAvx2: return quantize_row_avx2;
    case Isa::kScalar: break;
  }
  return quantize_row_scalar;
}

int64_t round_up(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

}  // namespace

void quantize_acts(const CpuContext& ctx, const Problem& p, QLayout layout, int corr_mult, QuantizedActs& out) {
  const int64_t nb = p.k / kBlock;
  out.layout = layout;
  out.m = p.m;
  out.nb = nb;
  out.nb_padded = layout == QLayout::kNatural ? round_up(nb, 4) : layout == QLayout::kSplit16 ? round_up(nb, 16) : nb;
  const int64_t np = out.nb_padded;
  out.q.resize(static_cast<size_t>(p.m * np * kBlock));
  out.dx.resize(static_cast<size_t>(p.m * np));
  out.corr.resize(static_cast<size_t>(p.m * np));

  const QuantizeRowFn quantize_row = quantize_row_for(ctx.isa);
  ctx.pool->parallel_for(
      p.m, stream_grain(p.k * 4, p.m, ctx.pool->size(), 1),
      [&](int64_t i0, int64_t i1) {
        thread_local std::vector<int8_t> natural;  // [np * 32]: k order, before rearranging (split layout)
        thread_local std::vector<float> dx;        // [np]
        thread_local std::vector<int32_t> sum;     // [np]
        dx.resize(static_cast<size_t>(np));
        sum.resize(static_cast<size_t>(np));
        if (layout == QLayout::kSplit16) natural.resize(static_cast<size_t>(np * kBlock));
        for (int64_t i = i0; i < i1; ++i) {
          int8_t* q = out.q.data() + i * np * kBlock;
          int8_t* qn = layout == QLayout::kSplit16 ? natural.data() : q;
          std::fill(dx.begin(), dx.end(), 0.0f);  // padding blocks: q = 0, dx = 0, corr = 0
          std::fill(sum.begin(), sum.end(), 0);
          std::memset(qn + nb * kBlock, 0, static_cast<size_t>((np - nb) * kBlock));
          quantize_row(p.x + i * p.ldx, nb, qn, dx.data(), sum.data());

          float* dxo = out.dx.data() + i * np;
          int32_t* co = out.corr.data() + i * np;
          switch (layout) {
            case QLayout::kNatural:
            case QLayout::kU8:
              for (int64_t b = 0; b < np; ++b) dxo[b] = dx[b], co[b] = corr_mult * sum[b];
              if (layout == QLayout::kU8)  // q + 128 as unsigned bytes: flip the sign bit
                for (int64_t t = 0; t < nb * kBlock; ++t) q[t] = static_cast<int8_t>(q[t] ^ 0x80);
              break;
            case QLayout::kSplit16:
              // Step s (blocks 16s..16s+15), group g (blocks 16s+4g+j, j < 4): 64 bytes holding the first
              // 16 values of each of the 4 blocks, then 64 bytes of their last 16. Scales and
              // corrections of the step in the order the GEMV's reduction produces sums: lane 4j + g
              // holds block 16s + 4g + j.
              for (int64_t s = 0; s < np / 16; ++s)
                for (int g = 0; g < 4; ++g)
                  for (int j = 0; j < 4; ++j) {
                    const int64_t b = 16 * s + 4 * g + j;
                    for (int h = 0; h < 2; ++h)
                      std::memcpy(q + s * 512 + g * 128 + h * 64 + j * 16, qn + b * kBlock + h * 16, 16);
                    dxo[16 * s + 4 * j + g] = dx[b];
                    co[16 * s + 4 * j + g] = corr_mult * sum[b];
                  }
              break;
          }
        }
      },
      Schedule::kStatic);
}

}  // namespace bf::cpu::lin
