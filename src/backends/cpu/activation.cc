// Element-wise ops on the CPU: unary activations (SiLU, GELU erf / tanh, softplus), the SwiGLU
// gate silu(gate) · up, and the residual add. Flat loops over contiguous f32, cut into chunks for
// the pool; AVX-512, AVX2 and scalar versions from activation-inl.h.
#include "backends/cpu/elementwise.h"
#include "backends/cpu/kernels.h"
#include "backends/cpu/simd.h"

#define BF_SIMD_INCLUDE "backends/cpu/activation-inl.h"
#include "backends/cpu/foreach_isa.h"

namespace bf::cpu {

void unary(const CpuContext& ctx, const UnaryArgs& a) {
  const auto fn =
      simd::select_isa(ctx.isa, &simd::scalar::unary_range, &simd::avx2::unary_range, &simd::avx512::unary_range);
  const float* x = f32_data(a.x);
  float* y = f32_data(a.y);
  parallel_flat(*ctx.pool, a.x.numel(),
                [&](int64_t begin, int64_t end) { fn(a.op, x + begin, y + begin, end - begin); });
}

void silu_mul(const CpuContext& ctx, const SiluMulArgs& a) {
  const auto fn = simd::select_isa(ctx.isa, &simd::scalar::silu_mul_range, &simd::avx2::silu_mul_range,
                                   &simd::avx512::silu_mul_range);
  const float* gate = f32_data(a.gate);
  const float* up = f32_data(a.up);
  float* y = f32_data(a.y);
  if (a.gate.is_contiguous() && a.up.is_contiguous() && a.y.is_contiguous()) {
    parallel_flat(*ctx.pool, a.gate.numel(),
                  [&](int64_t begin, int64_t end) { fn(gate + begin, up + begin, y + begin, end - begin); });
    return;
  }
  // [rows, width] with rows apart: whole rows per chunk (the function is element-wise, so the
  // split does not change a bit).
  const int64_t rows = a.gate.shape[0], width = a.gate.shape[1];
  const int64_t lg = a.gate.strides[0], lu = a.up.strides[0], ly = a.y.strides[0];
  ctx.pool->parallel_for(
      rows, rows_per_chunk(width),
      [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) fn(gate + r * lg, up + r * lu, y + r * ly, width);
      },
      Schedule::kStatic);
}

void add(const CpuContext& ctx, const AddArgs& a) {
  const auto fn = simd::select_isa(ctx.isa, &simd::scalar::add_range, &simd::avx2::add_range, &simd::avx512::add_range);
  const float* x = f32_data(a.a);
  const float* z = f32_data(a.b);
  float* y = f32_data(a.y);
  parallel_flat(*ctx.pool, a.a.numel(),
                [&](int64_t begin, int64_t end) { fn(x + begin, z + begin, y + begin, end - begin); });
}

}  // namespace bf::cpu
