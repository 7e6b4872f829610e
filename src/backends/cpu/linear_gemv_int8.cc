// q8_0 / q4_0 weights × int8 activations, for few activation rows (decode): the weights stream
// from DRAM once per call and every kernel here is built so that the integer work hides behind
// that stream. Output rows go over the pool; each weight row meets ≤ 4 activation rows at once
// (more rows: further groups of 4 re-read the chunk's rows from L1/L2).
//
// Per block b of 32: y += dw_b · dx_b · Σ w·x, with Σ w·x over int8 in int32. The unsigned × signed
// byte products (VNNI vpdpbusd, AVX2 vpmaddubsw) want one unsigned operand:
//   q4_0: the nibble q ∈ [0, 15] itself, and Σ (q − 8)·x = Σ q·x − 8·Σ x
//   q8_0: AVX-512: w + 128 (sign bit flipped), Σ w·x = Σ (w + 128)·x − 128·Σ x
//         AVX2: |w| against x carrying w's sign (vpsignb), no correction needed
// with the correction (corr_mult · Σ x per block) precomputed by quantize_acts.
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

constexpr int64_t kQ8Bytes = sizeof(BlockQ8_0), kQ4Bytes = sizeof(BlockQ4_0);

uint16_t load_u16(const std::byte* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

template <typename T>
const T* byte_offset(const T* p, int64_t bytes) {
  return reinterpret_cast<const T*>(reinterpret_cast<const std::byte*>(p) + bytes);
}

using RowsFn = void (*)(const Problem&, const QuantizedActs&, int64_t i0, int64_t j0, int64_t j1);

// ---- scalar ----------------------------------------------------------------------------------

template <bool kQ8>
void rows_scalar(const Problem& p, const QuantizedActs& a, int64_t i0, int64_t j0, int64_t j1) {
  const int64_t nb = a.nb, bpb = kQ8 ? kQ8Bytes : kQ4Bytes;
  const int64_t i1 = std::min(p.m, i0 + 4);
  for (int64_t j = j0; j < j1; ++j) {
    const std::byte* row = p.row(j);
    for (int64_t i = i0; i < i1; ++i) {
      const int8_t* x = a.q_row(i);
      const float* dx = a.dx_row(i);
      float acc = 0;
      for (int64_t b = 0; b < nb; ++b, x += 32) {
        const std::byte* blk = row + b * bpb;
        const auto* qs = reinterpret_cast<const uint8_t*>(blk + 2);
        int32_t dot = 0;
        if constexpr (kQ8) {
          for (int t = 0; t < 32; ++t) dot += static_cast<int8_t>(qs[t]) * x[t];
        } else {
          for (int t = 0; t < 16; ++t) dot += ((qs[t] & 0xF) - 8) * x[t] + ((qs[t] >> 4) - 8) * x[t + 16];
        }
        acc += static_cast<float>(dot) * (f16_to_f32(load_u16(blk)) * dx[b]);
      }
      p.y[i * p.ldy + j] = p.bias ? acc + p.bias[j] : acc;
    }
  }
}

// ---- AVX2 --------------------------------------------------------------------------------------

// [Σ p0, Σ p1, Σ p2, Σ p3] of four vectors of 8 int32.
BF_TARGET_AVX2 inline __m128i sum4_avx2(__m256i p0, __m256i p1, __m256i p2, __m256i p3) {
  const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(p0, p1), _mm256_hadd_epi32(p2, p3));
  return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

BF_TARGET_AVX2 inline float hsum_avx2(__m128 v) {
  v = _mm_add_ps(v, _mm_movehl_ps(v, v));
  v = _mm_add_ss(v, _mm_movehdup_ps(v));
  return _mm_cvtss_f32(v);
}

// Acts in QLayout::kNatural, padded to groups of 4 blocks.
template <int M, bool kQ8>
BF_TARGET_AVX2 void rows_avx2(const Problem& p, const QuantizedActs& a, int64_t i0, int64_t j0, int64_t j1) {
  constexpr int64_t bpb = kQ8 ? kQ8Bytes : kQ4Bytes;
  const int64_t nb = a.nb, full = nb / 4;  // whole groups of 4 blocks; the rest from a zero-padded copy
  alignas(32) std::byte tail[4 * bpb] = {};
  const __m256i ones = _mm256_set1_epi16(1), nibble = _mm256_set1_epi8(0x0F);
  for (int64_t j = j0; j < j1; ++j) {
    const std::byte* row = p.row(j);
    if (nb % 4) std::memcpy(tail, row + full * 4 * bpb, (nb % 4) * bpb);
    __m128 acc[M];
    for (int r = 0; r < M; ++r) acc[r] = _mm_setzero_ps();
    for (int64_t g = 0; g < a.nb_padded / 4; ++g) {
      const std::byte* base = g < full ? row + g * 4 * bpb : tail;
      for (int64_t b = 0; b < 4 * bpb; b += 64) prefetch_ahead(base + b);
      __m256i prod[M][4];
      for (int t = 0; t < 4; ++t) {
        const std::byte* blk = base + t * bpb;
        if constexpr (kQ8) {
          const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
          const __m256i aw = _mm256_abs_epi8(w);
          for (int r = 0; r < M; ++r) {
            const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.q_row(i0 + r) + (4 * g + t) * 32));
            prod[r][t] = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(x, w)), ones);
          }
        } else {
          const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2));
          const __m256i w = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), nibble);
          for (int r = 0; r < M; ++r) {
            const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.q_row(i0 + r) + (4 * g + t) * 32));
            prod[r][t] = _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), ones);
          }
        }
      }
      const uint64_t d4 = uint64_t{load_u16(base)} | uint64_t{load_u16(base + bpb)} << 16 |
                          uint64_t{load_u16(base + 2 * bpb)} << 32 | uint64_t{load_u16(base + 3 * bpb)} << 48;
      const __m128 dw = _mm_cvtph_ps(_mm_cvtsi64_si128(static_cast<long long>(d4)));
      for (int r = 0; r < M; ++r) {
        __m128i s = sum4_avx2(prod[r][0], prod[r][1], prod[r][2], prod[r][3]);
        s = _mm_sub_epi32(s, _mm_loadu_si128(reinterpret_cast<const __m128i*>(a.corr_row(i0 + r) + 4 * g)));
        const __m128 dx = _mm_loadu_ps(a.dx_row(i0 + r) + 4 * g);
        acc[r] = _mm_add_ps(acc[r], _mm_mul_ps(_mm_mul_ps(_mm_cvtepi32_ps(s), dx), dw));
      }
    }
    for (int r = 0; r < M; ++r) {
      const float v = hsum_avx2(acc[r]);
      p.y[(i0 + r) * p.ldy + j] = p.bias ? v + p.bias[j] : v;
    }
  }
}

// ---- AVX-512 VNNI ------------------------------------------------------------------------------

// Lane 4j + g of the result: Σ of the four int32 in 128-bit lane j of p_g. With p_g holding
// block 4g + j of a step in lane j, lane 4j + g is block 4g + j (the order of QLayout::kSplit16).
BF_TARGET_AVX512 inline __m512i sum4x4_avx512(__m512i p0, __m512i p1, __m512i p2, __m512i p3) {
  const __m512i t0 = _mm512_add_epi32(_mm512_unpacklo_epi32(p0, p1), _mm512_unpackhi_epi32(p0, p1));
  const __m512i t1 = _mm512_add_epi32(_mm512_unpacklo_epi32(p2, p3), _mm512_unpackhi_epi32(p2, p3));
  return _mm512_add_epi32(_mm512_unpacklo_epi64(t0, t1), _mm512_unpackhi_epi64(t0, t1));
}

// Four q8_0 blocks at `blk` → unsigned bytes (w + 128): lo = the first 16 values of each block
// (128-bit lane j = block j), hi = the last 16.
BF_TARGET_AVX512 inline void unpack4_q8_avx512(const std::byte* blk, __m512i& lo, __m512i& hi) {
  const auto* q = reinterpret_cast<const __m256i*>(blk + 2);  // block t's values at q + t · 34 bytes
  const __m512i b01 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(q)),
                                         _mm256_loadu_si256(byte_offset(q, kQ8Bytes)), 1);  // [0 lo, 0 hi, 1 lo, 1 hi]
  const __m512i b23 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(byte_offset(q, 2 * kQ8Bytes))),
                                         _mm256_loadu_si256(byte_offset(q, 3 * kQ8Bytes)), 1);
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  lo = _mm512_xor_si512(_mm512_shuffle_i64x2(b01, b23, _MM_SHUFFLE(2, 0, 2, 0)), flip);
  hi = _mm512_xor_si512(_mm512_shuffle_i64x2(b01, b23, _MM_SHUFFLE(3, 1, 3, 1)), flip);
}

// Four q4_0 blocks (72 bytes, 36 words) at `blk`: one 64-byte load (returned in `head`, which
// holds the 4 scales at words 0, 9, 18, 27) and one of 8 bytes, and a word permute that drops the
// scales, give the 4 × 16 code bytes (128-bit lane j = block j); the nibbles are the unsigned
// operands, lo = values 0–15 of each block, hi = 16–31.
BF_TARGET_AVX512 inline void unpack4_q4_avx512(const std::byte* blk, __m512i& lo, __m512i& hi, __m512i& head) {
  const __m512i codes_at = _mm512_set_epi16(35, 34, 33, 32, 31, 30, 29, 28, 26, 25, 24, 23, 22, 21, 20, 19,  //
                                            17, 16, 15, 14, 13, 12, 11, 10, 8, 7, 6, 5, 4, 3, 2, 1);
  head = _mm512_loadu_si512(blk);
  const __m512i w1 = _mm512_maskz_loadu_epi16(0x000F, blk + 64);  // words 32–35; nothing past the group
  const __m512i v = _mm512_permutex2var_epi16(head, codes_at, w1);
  const __m512i nibble = _mm512_set1_epi8(0x0F);
  lo = _mm512_and_si512(v, nibble);
  hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), nibble);
}

// The scales of two q4_0 groups (their `head`s), at words 4j + g and 4j + g + 1 (sum4x4 order),
// zeros elsewhere: g = 0 takes words 4j, 4j + 1; g = 2 takes 4j + 2, 4j + 3.
BF_TARGET_AVX512 inline __m512i q4_scales(__m512i head_a, __m512i head_b, int g) {
  const __m512i scale_at = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  //
                                            59, 27, 59, 27, 50, 18, 50, 18, 41, 9, 41, 9, 32, 0, 32, 0);
  return _mm512_maskz_permutex2var_epi16(static_cast<__mmask32>(0x3333u << g), head_a, scale_at, head_b);
}

// One step: 16 blocks of one weight row at `base` against M activation rows (their step data at
// xq[r], corr[r], dx[r]), folded into acc[r].
// A tail step (the row's last nb % 16 blocks, from a zero-padded copy) runs only the G groups of
// 4 blocks that hold data: SmolLM2's 576-wide rows are 18 blocks, one step and a 2-block tail, and
// a full tail step would do 16 blocks of work for 2.
template <int M, bool kQ8, int G = 4>
BF_TARGET_AVX512 inline void step_avx512(const std::byte* base, const int8_t* const* xq, const int32_t* const* corr,
                                         const float* const* dx, __m512i scale_at, __m512* acc) {
  constexpr int64_t bpb = kQ8 ? kQ8Bytes : kQ4Bytes;
  __m512i prod[M][4];
  __m512i head[4], scales01;  // q4_0: each group's first 64 bytes, for the scales
  for (int g = G; g < 4; ++g) {
    head[g] = _mm512_setzero_si512();
    for (int r = 0; r < M; ++r) prod[r][g] = _mm512_setzero_si512();
  }
  for (int g = 0; g < G; ++g) {
    __m512i lo, hi;
    if constexpr (kQ8) {
      unpack4_q8_avx512(base + g * 4 * bpb, lo, hi);
    } else {
      unpack4_q4_avx512(base + g * 4 * bpb, lo, hi, head[g]);
      if (g == 1) scales01 = q4_scales(head[0], head[1], 0);
    }
    for (int r = 0; r < M; ++r) {
      const __m512i d = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, _mm512_loadu_si512(xq[r] + g * 128));
      prod[r][g] = _mm512_dpbusd_epi32(d, hi, _mm512_loadu_si512(xq[r] + g * 128 + 64));
    }
  }
  if constexpr (!kQ8 && G < 2) scales01 = q4_scales(head[0], head[1], 0);  // head[1] is zero
  __m512 dw;
  if constexpr (kQ8)  // 4 bytes from each scale's address: the f16 scale and 2 code bytes
    dw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_i32gather_epi32(scale_at, base, 1)));
  else  // the 16 f16 scales in sum4x4 order
    dw = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_or_si512(scales01, q4_scales(head[2], head[3], 2))));
  for (int r = 0; r < M; ++r) {
    __m512i sums = sum4x4_avx512(prod[r][0], prod[r][1], prod[r][2], prod[r][3]);
    sums = _mm512_sub_epi32(sums, _mm512_loadu_si512(corr[r]));
    acc[r] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(sums), _mm512_loadu_ps(dx[r])), dw, acc[r]);
  }
}

// Acts in QLayout::kSplit16: per step of 16 blocks, 4 groups × (64 bytes first halves, 64 bytes
// second halves), then per-step scales and corrections in sum4x4 order. One step costs per
// activation row 8 vpdpbusd, one 4×4 reduction and 4 float ops; the 16 weight scales (a word
// permute per group for q4_0, one gather for q8_0) are converted once for all rows. Steps
// alternate between two accumulators so consecutive steps do not wait on each other's FMA.
template <int M, bool kQ8>
BF_TARGET_AVX512 void rows_avx512(const Problem& p, const QuantizedActs& a, int64_t i0, int64_t j0, int64_t j1) {
  constexpr int64_t bpb = kQ8 ? kQ8Bytes : kQ4Bytes;
  constexpr int64_t step_bytes = 16 * bpb;
  const int64_t nb = a.nb, full = nb / 16;  // whole steps; the rest from a zero-padded copy
  const bool has_tail = nb % 16 != 0;
  alignas(64) std::byte tail[step_bytes] = {};
  __m512i scale_at;  // byte offset of block 4g + j's scale, in lane 4j + g
  {
    alignas(64) int32_t off[16];
    for (int g = 0; g < 4; ++g)
      for (int jj = 0; jj < 4; ++jj) off[4 * jj + g] = static_cast<int32_t>((4 * g + jj) * bpb);
    scale_at = _mm512_load_si512(off);
  }
  const int8_t* xq0[M];
  const int32_t* corr0[M];
  const float* dx0[M];
  for (int r = 0; r < M; ++r) xq0[r] = a.q_row(i0 + r), corr0[r] = a.corr_row(i0 + r), dx0[r] = a.dx_row(i0 + r);
  for (int64_t j = j0; j < j1; ++j) {
    const std::byte* row = p.row(j);
    __m512 acc[2][M];
    for (int r = 0; r < M; ++r) acc[0][r] = acc[1][r] = _mm512_setzero_ps();
    const int8_t* xq[M];
    const int32_t* corr[M];
    const float* dx[M];
    for (int r = 0; r < M; ++r) xq[r] = xq0[r], corr[r] = corr0[r], dx[r] = dx0[r];
    auto advance = [&] {
      for (int r = 0; r < M; ++r) xq[r] += 512, corr[r] += 16, dx[r] += 16;
    };
    const std::byte* base = row;
    int64_t s = 0;
    for (; s + 2 <= full; s += 2, base += 2 * step_bytes) {  // two steps, one per accumulator
      for (int64_t b = 0; b < 2 * step_bytes; b += 64) prefetch_ahead(base + b);
      step_avx512<M, kQ8>(base, xq, corr, dx, scale_at, acc[0]);
      advance();
      step_avx512<M, kQ8>(base + step_bytes, xq, corr, dx, scale_at, acc[1]);
      advance();
    }
    if (s < full) {
      for (int64_t b = 0; b < step_bytes; b += 64) prefetch_ahead(base + b);
      step_avx512<M, kQ8>(base, xq, corr, dx, scale_at, acc[0]);
      advance();
      base += step_bytes;
    }
    if (has_tail) {
      std::memcpy(tail, base, (nb % 16) * bpb);
      switch ((nb % 16 + 3) / 4) {
        case 1: step_avx512<M, kQ8, 1>(tail, xq, corr, dx, scale_at, acc[1]); break;
        case 2: step_avx512<M, kQ8, 2>(tail, xq, corr, dx, scale_at, acc[1]); break;
        case 3: step_avx512<M, kQ8, 3>(tail, xq, corr, dx, scale_at, acc[1]); break;
        default: step_avx512<M, kQ8, 4>(tail, xq, corr, dx, scale_at, acc[1]); break;
      }
    }
    for (int r = 0; r < M; ++r) {
      const float v = _mm512_reduce_add_ps(_mm512_add_ps(acc[0][r], acc[1][r]));
      p.y[(i0 + r) * p.ldy + j] = p.bias ? v + p.bias[j] : v;
    }
  }
}

RowsFn pick(Isa isa, bool q8, int rows) {
  switch (isa) {
    case Isa::kAvx512: {
      static constexpr RowsFn q4[] = {rows_avx512<1, false>, rows_avx512<2, false>, rows_avx512<3, false>,
                                      rows_avx512<4, false>};
      static constexpr RowsFn q8v[] = {rows_avx512<1, true>, rows_avx512<2, true>, rows_avx512<3, true>,
                                       rows_avx512<4, true>};
      return q8 ? q8v[rows - 1] : q4[rows - 1];
    }
    case Isa::kAvx2: {
      static constexpr RowsFn q4[] = {rows_avx2<1, false>, rows_avx2<2, false>, rows_avx2<3, false>,
                                      rows_avx2<4, false>};
      static constexpr RowsFn q8v[] = {rows_avx2<1, true>, rows_avx2<2, true>, rows_avx2<3, true>, rows_avx2<4, true>};
      return q8 ? q8v[rows - 1] : q4[rows - 1];
    }
    case Isa::kScalar: return q8 ? rows_scalar<true> : rows_scalar<false>;
  }
  return nullptr;
}

}  // namespace

QLayoutSpec qgemv_layout(Isa isa, DType wtype) {
  const bool q8 = wtype == DType::kQ8_0;
  switch (isa) {
    case Isa::kAvx512: return {QLayout::kSplit16, q8 ? 128 : 8};
    case Isa::kAvx2: return {QLayout::kNatural, q8 ? 0 : 8};
    case Isa::kScalar: break;
  }
  return {QLayout::kNatural, 0};
}

void qgemv(const CpuContext& ctx, const Problem& p, const QuantizedActs& acts) {
  BF_CHECK(p.wtype == DType::kQ8_0 || p.wtype == DType::kQ4_0, "qgemv of ", dtype_name(p.wtype));
  const bool q8 = p.wtype == DType::kQ8_0;
  // Pick the kernels once per call; chunks run them over their rows.
  RowsFn fns[4];
  for (int r = 1; r <= 4; ++r) fns[r - 1] = pick(ctx.isa, q8, r);
  ctx.pool->parallel_for(p.n, stream_grain(p.w_row_bytes, p.n, ctx.pool->size(), 4), [&](int64_t j0, int64_t j1) {
    for (int64_t i0 = 0; i0 < p.m; i0 += 4) fns[std::min<int64_t>(4, p.m - i0) - 1](p, acts, i0, j0, j1);
  });
}

}  // namespace bf::cpu::lin
