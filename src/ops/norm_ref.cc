// RMSNorm and LayerNorm: argument checks and scalar references (double accumulation).
#include <cmath>

#include "ops/elementwise_checks.h"
#include "ops/reference.h"

namespace bf::ops {
namespace {

// x and y: f32 [rows, dim], dense rows, same shape; y is x itself or disjoint from it.
void check_rows_in_out(std::string_view op, const ConstTensorView& x, const TensorView& y) {
  checks::f32(op, "x", x);
  checks::rank(op, "x", x, 2, "[rows, dim]");
  checks::rows_dense(op, "x", x);
  checks::has_data(op, "x", x);
  checks::f32(op, "y", y);
  checks::rank(op, "y", y, 2, "[rows, dim]");
  checks::same_shape(op, "y", y, "x", x);
  checks::rows_dense(op, "y", y);
  checks::has_data(op, "y", y);
  checks::same_or_disjoint(op, "y", y, "x", x);
}

void check_eps(std::string_view op, float eps) {
  if (!std::isfinite(eps) || eps < 0) checks::fail(op, cat("eps must be finite and >= 0, got ", eps));
}

const float* row_of(const ConstTensorView& t, int64_t r) {
  return reinterpret_cast<const float*>(t.data) + r * t.strides[0];
}
float* row_of(const TensorView& t, int64_t r) { return reinterpret_cast<float*>(t.data) + r * t.strides[0]; }
const float* data_or_null(const ConstTensorView& t) {
  return checks::present(t) ? reinterpret_cast<const float*>(t.data) : nullptr;
}

}  // namespace

void validate(const RmsNormArgs& a) {
  check_rows_in_out("rms_norm", a.x, a.y);
  checks::feature_vector("rms_norm", "weight", a.weight, a.x.shape[1]);
  checks::feature_vector("rms_norm", "bias", a.bias, a.x.shape[1]);
  check_eps("rms_norm", a.eps);
}

void validate(const LayerNormArgs& a) {
  check_rows_in_out("layer_norm", a.x, a.y);
  checks::feature_vector("layer_norm", "weight", a.weight, a.x.shape[1]);
  checks::feature_vector("layer_norm", "bias", a.bias, a.x.shape[1]);
  check_eps("layer_norm", a.eps);
}

namespace ref {
namespace {

// The common tail of both norms: y = ((x − center) · inv_scale) · weight + bias, in double.
void write_normalized_row(const float* x, float* y, int64_t dim, double center, double inv_scale, const float* w,
                          const float* b) {
  for (int64_t i = 0; i < dim; ++i) {
    double v = (x[i] - center) * inv_scale;
    if (w) v *= w[i];
    if (b) v += b[i];
    y[i] = static_cast<float>(v);
  }
}

}  // namespace

// Equinox: inv_rms = rsqrt(mean(x²) + eps); y = weight · (inv_rms · x) + bias.
void rms_norm(const RmsNormArgs& a) {
  validate(a);
  const int64_t rows = a.x.shape[0], dim = a.x.shape[1];
  const float* w = data_or_null(a.weight);
  const float* b = data_or_null(a.bias);
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = row_of(a.x, r);
    float* y = row_of(a.y, r);
    double sum_sq = 0;
    for (int64_t i = 0; i < dim; ++i) sum_sq += double{x[i]} * x[i];
    const double inv_rms = 1.0 / std::sqrt(sum_sq / static_cast<double>(dim) + a.eps);
    write_normalized_row(x, y, dim, 0.0, inv_rms, w, b);
  }
}

// Equinox: y = (x − mean) · rsqrt(max(var, 0) + eps) · weight + bias, var biased (÷ dim).
void layer_norm(const LayerNormArgs& a) {
  validate(a);
  const int64_t rows = a.x.shape[0], dim = a.x.shape[1];
  const float* w = data_or_null(a.weight);
  const float* b = data_or_null(a.bias);
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = row_of(a.x, r);
    float* y = row_of(a.y, r);
    double mean = 0;
    for (int64_t i = 0; i < dim; ++i) mean += x[i];
    mean /= static_cast<double>(dim);
    double var = 0;
    for (int64_t i = 0; i < dim; ++i) var += (x[i] - mean) * (x[i] - mean);
    var /= static_cast<double>(dim);
    const double inv_std = 1.0 / std::sqrt(var + a.eps);
    write_normalized_row(x, y, dim, mean, inv_std, w, b);
  }
}

}  // namespace ref
}  // namespace bf::ops
