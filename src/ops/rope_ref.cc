// Rotate-half RoPE at explicit positions: argument checks and the scalar reference.
#include <cmath>
#include <vector>

#include "ops/elementwise_checks.h"
#include "ops/reference.h"
#include "ops/rope_freqs.h"

namespace bf::ops {

void validate(const RopeArgs& a) {
  constexpr std::string_view op = "rope";
  checks::f32(op, "x", a.x);
  checks::rank(op, "x", a.x, 3, "[rows, n_heads, head_dim]");
  checks::rows_dense(op, "x", a.x);
  checks::has_data(op, "x", a.x);
  if (a.x.shape[2] % 2 != 0) checks::fail(op, cat("head_dim (the last dim of x) must be even, got ", a.x.shape[2]));
  if (a.positions == nullptr && a.x.shape[0] > 0)
    checks::fail(op, cat("positions is null but x has ", a.x.shape[0], " rows"));
  if (!std::isfinite(a.theta) || a.theta <= 0) checks::fail(op, cat("theta must be finite and > 0, got ", a.theta));
}

namespace ref {

// For each row, head and i < d/2, with a = f32(pos) · f_i (ops/rope_freqs.h), cos and sin taken
// in double:  x[i] ← x[i]·cos a − x[i + d/2]·sin a,  x[i + d/2] ← x[i + d/2]·cos a + x[i]·sin a.
void rope(const RopeArgs& a) {
  validate(a);
  const int64_t rows = a.x.shape[0], heads = a.x.shape[1], head_dim = a.x.shape[2], half = head_dim / 2;
  std::vector<float> inv_freq(half);  // [half]
  for (int64_t i = 0; i < half; ++i) inv_freq[i] = rope_inv_freq(i, head_dim, a.theta);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t h = 0; h < heads; ++h) {
      float* x = reinterpret_cast<float*>(a.x.data) + r * a.x.strides[0] + h * a.x.strides[1];
      for (int64_t i = 0; i < half; ++i) {
        const double angle = rope_angle(a.positions[r], inv_freq[i]);
        const double c = std::cos(angle), s = std::sin(angle);
        const double x1 = x[i], x2 = x[i + half];
        x[i] = static_cast<float>(x1 * c - x2 * s);
        x[i + half] = static_cast<float>(x2 * c + x1 * s);
      }
    }
  }
}

}  // namespace ref
}  // namespace bf::ops
