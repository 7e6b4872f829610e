// RMSNorm and LayerNorm on the CPU: one pass (RMS) or two (mean, then variance) over each row for
// the statistics, one more to write it; rows spread over the pool. AVX-512, AVX2 and scalar
// versions come from norm-inl.h.
#include <cmath>

#include "backends/cpu/elementwise.h"
#include "backends/cpu/kernels.h"
#include "backends/cpu/simd.h"

namespace bf::cpu {
namespace {

struct NormRows {
  const float* x;  // [rows, dim], row stride x_stride
  int64_t x_stride;
  float* y;  // [rows, dim], row stride y_stride
  int64_t y_stride;
  int64_t dim;
  const float* weight;  // [dim] or nullptr
  const float* bias;    // [dim] or nullptr
  float eps;
  bool center;  // LayerNorm: subtract the mean (and use the variance, not mean(x²))
};

}  // namespace
}  // namespace bf::cpu

#define BF_SIMD_INCLUDE "backends/cpu/norm-inl.h"
#include "backends/cpu/foreach_isa.h"

namespace bf::cpu {
namespace {

void run_norm(const CpuContext& ctx, const NormRows& p, int64_t rows) {
  const auto fn = simd::select_isa(ctx.isa, &simd::scalar::norm_rows, &simd::avx2::norm_rows, &simd::avx512::norm_rows);
  ctx.pool->parallel_for(
      rows, rows_per_chunk(p.dim), [&](int64_t begin, int64_t end) { fn(p, begin, end); }, Schedule::kStatic);
}

}  // namespace

void rms_norm(const CpuContext& ctx, const RmsNormArgs& a) {
  const NormRows p{f32_data(a.x),         a.x.strides[0],      f32_data(a.y), a.y.strides[0], a.x.shape[1],
                   f32_or_null(a.weight), f32_or_null(a.bias), a.eps,         false};
  run_norm(ctx, p, a.x.shape[0]);
}

void layer_norm(const CpuContext& ctx, const LayerNormArgs& a) {
  const NormRows p{f32_data(a.x),       a.x.strides[0], f32_data(a.y),
                   a.y.strides[0],      a.x.shape[1],   f32_or_null(a.weight),
                   f32_or_null(a.bias), a.eps,          true};
  run_norm(ctx, p, a.x.shape[0]);
}

}  // namespace bf::cpu
