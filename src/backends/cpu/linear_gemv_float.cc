// f16, bf16, f8_e4m3 and nf4 weights × f32 activations for few rows (decode), AVX-512: each weight
// row is converted to f32 in registers on its way from memory into the FMAs, with no panel copy
// (linear_float.cc's dequantize-then-tile path serves the other ISAs and the GEMM). Per 16 weights:
//   f16      one vcvtph2ps
//   bf16     widen and shift into the high half
//   f8_e4m3  widen to the high byte of 16 bits, shift right 1 with sign and clear bit 14: the half
//            of value f8 / 2⁸, converted exactly; the 2⁸ and the row scale come after the sum
//   nf4      codes widened to 32 bits pick from the 16 levels with one vpermps; the block's
//            absmax multiplies the block's partial sum once
// Each weight row meets ≤ 4 activation rows at once, two accumulators each (k in steps of 32).
#include <immintrin.h>

#include <cstring>
#include <limits>

#include "backends/cpu/linear_internal.h"
#include "batch_forge/core/error.h"
#include "batch_forge/ops/quant.h"

// GCC 12's AVX-512 intrinsics start from _mm512_undefined_*(), a self-initialized value that its
// flow analysis reports as "may be used uninitialized" inside target-attributed functions.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace bf::cpu::lin {
namespace {

constexpr int64_t kNf4Bytes = sizeof(BlockNF4);

uint16_t load_u16(const std::byte* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

BF_TARGET_AVX512 inline __mmask16 tail_mask(int64_t left) {
  return left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
}

// 16 weights at element t of a row of 2-byte or 1-byte values, as f32 (fp8: f8 / 2⁸), `mask`
// selecting those inside the row. `nan` collects fp8 NaN codes.
template <DType T>
BF_TARGET_AVX512 inline __m512 load16(const std::byte* row, int64_t t, __mmask16 mask, __mmask16& nan) {
  if constexpr (T == DType::kF16) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, row + 2 * t));
  } else if constexpr (T == DType::kBF16) {
    return _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, row + 2 * t)), 16));
  } else {
    static_assert(T == DType::kF8E4M3);
    const __m256i w = _mm256_slli_epi16(_mm256_cvtepu8_epi16(_mm_maskz_loadu_epi8(mask, row + t)), 8);
    const __m256i h = _mm256_and_si256(_mm256_srai_epi16(w, 1), _mm256_set1_epi16(static_cast<short>(0xBFFF)));
    nan |= _mm256_cmpeq_epi16_mask(_mm256_and_si256(h, _mm256_set1_epi16(0x7FFF)), _mm256_set1_epi16(0x3F80));
    return _mm512_cvtph_ps(h);
  }
}

// Element-wise types: f16, bf16, f8_e4m3.
template <int M, DType T>
BF_TARGET_AVX512 void rows_plain(const Problem& p, int64_t i0, int64_t j0, int64_t j1) {
  const int64_t k = p.k;
  const float* x[M];
  for (int r = 0; r < M; ++r) x[r] = p.x + (i0 + r) * p.ldx;
  for (int64_t j = j0; j < j1; ++j) {
    const std::byte* row = p.row(j);
    __m512 acc[M][2];
    for (int r = 0; r < M; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    __mmask16 nan = 0;
    int64_t t = 0;
    for (; t + 32 <= k; t += 32) {
      const __m512 w0 = load16<T>(row, t, 0xFFFF, nan), w1 = load16<T>(row, t + 16, 0xFFFF, nan);
      for (int r = 0; r < M; ++r) {
        acc[r][0] = _mm512_fmadd_ps(_mm512_loadu_ps(x[r] + t), w0, acc[r][0]);
        acc[r][1] = _mm512_fmadd_ps(_mm512_loadu_ps(x[r] + t + 16), w1, acc[r][1]);
      }
    }
    for (; t < k; t += 16) {  // ≤ 2 masked steps
      const __mmask16 mask = tail_mask(k - t);
      const __m512 w = load16<T>(row, t, mask, nan);
      for (int r = 0; r < M; ++r) acc[r][0] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, x[r] + t), w, acc[r][0]);
    }
    for (int r = 0; r < M; ++r) {
      float v = _mm512_reduce_add_ps(_mm512_add_ps(acc[r][0], acc[r][1]));
      if constexpr (T == DType::kF8E4M3) {
        v = v * 256.0f * p.scale[j];  // ×2⁸ exact, then the row scale
        if (nan) v = std::numeric_limits<float>::quiet_NaN();
      }
      p.y[(i0 + r) * p.ldy + j] = p.bias ? v + p.bias[j] : v;
    }
  }
}

// nf4: per block of 64, bytes 0–15 and 16–31 hold codes of values 0–15 / 16–31 (low nibbles) and
// 32–47 / 48–63 (high nibbles).
template <int M>
BF_TARGET_AVX512 void rows_nf4(const Problem& p, int64_t i0, int64_t j0, int64_t j1) {
  const int64_t nb = p.k / 64;
  const __m512 levels = _mm512_loadu_ps(kNf4Values);
  const __m512i nibble = _mm512_set1_epi32(0xF);
  const float* x[M];
  for (int r = 0; r < M; ++r) x[r] = p.x + (i0 + r) * p.ldx;
  for (int64_t j = j0; j < j1; ++j) {
    const std::byte* blk = p.row(j);
    __m512 acc[M];
    for (int r = 0; r < M; ++r) acc[r] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b, blk += kNf4Bytes) {
      prefetch_ahead(blk);  // +17 % (4096², 2 threads); for f16 / bf16 / fp8 it cost 20–35 %
      const __m512i c0 = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2)));
      const __m512i c1 = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 18)));
      const __m512 w0 = _mm512_permutexvar_ps(_mm512_and_si512(c0, nibble), levels);
      const __m512 w1 = _mm512_permutexvar_ps(_mm512_and_si512(c1, nibble), levels);
      const __m512 w2 = _mm512_permutexvar_ps(_mm512_srli_epi32(c0, 4), levels);
      const __m512 w3 = _mm512_permutexvar_ps(_mm512_srli_epi32(c1, 4), levels);
      const __m512 absmax = _mm512_set1_ps(_cvtsh_ss(load_u16(blk)));  // F16C;
      for (int r = 0; r < M; ++r) {
        const float* xb = x[r] + 64 * b;
        __m512 s = _mm512_mul_ps(_mm512_loadu_ps(xb), w0);
        s = _mm512_fmadd_ps(_mm512_loadu_ps(xb + 16), w1, s);
        s = _mm512_fmadd_ps(_mm512_loadu_ps(xb + 32), w2, s);
        s = _mm512_fmadd_ps(_mm512_loadu_ps(xb + 48), w3, s);
        acc[r] = _mm512_fmadd_ps(s, absmax, acc[r]);
      }
    }
    for (int r = 0; r < M; ++r) {
      const float v = _mm512_reduce_add_ps(acc[r]);
      p.y[(i0 + r) * p.ldy + j] = p.bias ? v + p.bias[j] : v;
    }
  }
}

using RowsFn = void (*)(const Problem&, int64_t i0, int64_t j0, int64_t j1);

template <int M>
RowsFn pick_rows(DType t) {
  switch (t) {
    case DType::kF16: return rows_plain<M, DType::kF16>;
    case DType::kBF16: return rows_plain<M, DType::kBF16>;
    case DType::kF8E4M3: return rows_plain<M, DType::kF8E4M3>;
    case DType::kNF4: return rows_nf4<M>;
    default: return nullptr;
  }
}

}  // namespace

bool has_fused_gemv(Isa isa, DType t) {
  return isa == Isa::kAvx512 && (t == DType::kF16 || t == DType::kBF16 || t == DType::kF8E4M3 || t == DType::kNF4);
}

void fgemv_avx512(const CpuContext& ctx, const Problem& p) {
  BF_CHECK(has_fused_gemv(ctx.isa, p.wtype), "fgemv_avx512 of ", dtype_name(p.wtype));
  const RowsFn fns[4] = {pick_rows<1>(p.wtype), pick_rows<2>(p.wtype), pick_rows<3>(p.wtype), pick_rows<4>(p.wtype)};
  ctx.pool->parallel_for(p.n, stream_grain(p.w_row_bytes, p.n, ctx.pool->size(), 4), [&](int64_t j0, int64_t j1) {
    for (int64_t i0 = 0; i0 < p.m; i0 += 4) fns[std::min<int64_t>(4, p.m - i0) - 1](p, i0, j0, j1);
  });
}

}  // namespace bf::cpu::lin
