// Softmax over the last dim: argument checks and the scalar reference.
#include <cmath>
#include <limits>

#include "ops/elementwise_checks.h"
#include "ops/reference.h"

namespace bf::ops {

void validate(const SoftmaxArgs& a) {
  constexpr std::string_view op = "softmax";
  checks::f32(op, "x", a.x);
  checks::rank(op, "x", a.x, 2, "[rows, dim]");
  checks::rows_dense(op, "x", a.x);
  checks::has_data(op, "x", a.x);
  checks::f32(op, "y", a.y);
  checks::rank(op, "y", a.y, 2, "[rows, dim]");
  checks::same_shape(op, "y", a.y, "x", a.x);
  checks::rows_dense(op, "y", a.y);
  checks::has_data(op, "y", a.y);
  checks::same_or_disjoint(op, "y", a.y, "x", a.x);
}

namespace ref {

// y[r, i] = exp(x[r, i] − m) / Σ_j exp(x[r, j] − m), m = max_j x[r, j], as jax.nn.softmax. Like
// JAX, a row that is all −inf, or holds +inf or NaN, comes out all NaN (−inf − −inf, inf − inf and
// NaN − m are NaN, and the NaN reaches every element through the sum).
void softmax(const SoftmaxArgs& a) {
  validate(a);
  const int64_t rows = a.x.shape[0], dim = a.x.shape[1];
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = reinterpret_cast<const float*>(a.x.data) + r * a.x.strides[0];
    float* y = reinterpret_cast<float*>(a.y.data) + r * a.y.strides[0];
    double max = -std::numeric_limits<double>::infinity();
    for (int64_t i = 0; i < dim; ++i) max = std::isnan(x[i]) || std::isnan(max) ? NAN : std::max(max, double{x[i]});
    double sum = 0;
    for (int64_t i = 0; i < dim; ++i) sum += std::exp(x[i] - max);
    for (int64_t i = 0; i < dim; ++i) y[i] = static_cast<float>(std::exp(x[i] - max) / sum);
  }
}

}  // namespace ref
}  // namespace bf::ops
