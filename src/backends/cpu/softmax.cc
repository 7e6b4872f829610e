// Softmax over the last dim on the CPU: rows spread over the pool; AVX-512, AVX2 and scalar
// versions from softmax-inl.h.
#include <cmath>

#include "backends/cpu/elementwise.h"
#include "backends/cpu/kernels.h"
#include "backends/cpu/simd.h"

namespace bf::cpu {
namespace {

struct SoftmaxRows {
  const float* x;  // [rows, dim], row stride x_stride
  int64_t x_stride;
  float* y;  // [rows, dim], row stride y_stride (may be x)
  int64_t y_stride;
  int64_t dim;
};

}  // namespace
}  // namespace bf::cpu

#define BF_SIMD_INCLUDE "backends/cpu/softmax-inl.h"
#include "backends/cpu/foreach_isa.h"

namespace bf::cpu {

void softmax(const CpuContext& ctx, const SoftmaxArgs& a) {
  const SoftmaxRows p{f32_data(a.x), a.x.strides[0], f32_data(a.y), a.y.strides[0], a.x.shape[1]};
  const auto fn =
      simd::select_isa(ctx.isa, &simd::scalar::softmax_rows, &simd::avx2::softmax_rows, &simd::avx512::softmax_rows);
  ctx.pool->parallel_for(
      a.x.shape[0], rows_per_chunk(p.dim), [&](int64_t begin, int64_t end) { fn(p, begin, end); }, Schedule::kStatic);
}

}  // namespace bf::cpu
