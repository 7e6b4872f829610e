// Element-wise ops — unary activations, the SwiGLU gate, residual add: argument checks and scalar
// references, in double, defined as jax.nn defines them.
#include <cmath>

#include "ops/elementwise_checks.h"
#include "ops/reference.h"

namespace bf::ops {
namespace {

void check_flat_in(std::string_view op, std::string_view name, const ConstTensorView& t) {
  checks::f32(op, name, t);
  checks::contiguous(op, name, t);
  checks::has_data(op, name, t);
}

void check_flat_out(std::string_view op, const TensorView& y, std::string_view in_name, const ConstTensorView& in) {
  checks::f32(op, "y", y);
  checks::same_shape(op, "y", y, in_name, in);
  checks::contiguous(op, "y", y);
  checks::has_data(op, "y", y);
}

const float* f32_data(const ConstTensorView& t) { return reinterpret_cast<const float*>(t.data); }
float* f32_data(const TensorView& t) { return reinterpret_cast<float*>(t.data); }

double silu(double x) { return x / (1.0 + std::exp(-x)); }

// jax.nn.gelu(approximate=False) = x/2 · erfc(−x·√½), with the argument rounded to f32 as JAX
// computes it (that rounding moves erfc by up to 2t² ulps in the far tail; the definition follows
// the model, not the real-number GELU).
double gelu(float x) {
  const float z = -x * 0.70710678f;  // f32, as JAX: −x · sqrt_half
  return 0.5 * x * std::erfc(static_cast<double>(z));
}

// jax.nn.gelu(approximate=True) = x/2 · (1 + tanh u), u = √(2/π)·(x + 0.044715 x³), with u rounded
// to f32 as JAX computes it. (1 + tanh u)/2 is evaluated as 1/(1 + e^−2u), the same function
// without the cancellation that costs 1 + tanh u all its digits (even in double) for u < −15.
double gelu_tanh(float x) {
  const float u = 0.797884583f * (x + 0.044715f * (x * x * x));  // f32, as JAX
  return x / (1.0 + std::exp(-2.0 * static_cast<double>(u)));
}

// jax.nn.softplus = logaddexp(x, 0) = max(x, 0) + log1p(exp(−|x|)): no overflow for large |x|.
double softplus(double x) {
  if (std::isnan(x)) return x;
  return std::max(x, 0.0) + std::log1p(std::exp(-std::abs(x)));
}

}  // namespace

void validate(const UnaryArgs& a) {
  switch (a.op) {
    case UnaryOp::kSilu:
    case UnaryOp::kGelu:
    case UnaryOp::kGeluTanh:
    case UnaryOp::kSoftplus: break;
    default: checks::fail("unary", cat("op is not a UnaryOp (value ", static_cast<int>(a.op), ")"));
  }
  check_flat_in("unary", "x", a.x);
  check_flat_out("unary", a.y, "x", a.x);
  checks::same_or_disjoint("unary", "y", a.y, "x", a.x);
}

// Contiguous, or [rows, width] with dense rows (silu_mul's views).
template <typename Byte>
void check_flat_or_rows(std::string_view op, std::string_view name, const BasicTensorView<Byte>& t) {
  checks::f32(op, name, t);
  checks::has_data(op, name, t);
  if (t.is_contiguous()) return;
  if (t.shape.rank() != 2)
    checks::fail(op, cat(name, " must be contiguous or [rows, width] with rows apart, got strides ",
                         t.strides.to_string(), " for shape ", t.shape.to_string()));
  checks::rows_dense(op, name, t);
}

void validate(const SiluMulArgs& a) {
  check_flat_or_rows("silu_mul", "gate", a.gate);
  check_flat_or_rows("silu_mul", "up", a.up);
  checks::same_shape("silu_mul", "up", a.up, "gate", a.gate);
  check_flat_or_rows("silu_mul", "y", a.y);
  checks::same_shape("silu_mul", "y", a.y, "gate", a.gate);
  checks::same_or_disjoint("silu_mul", "y", a.y, "gate", a.gate);
  checks::same_or_disjoint("silu_mul", "y", a.y, "up", a.up);
}

void validate(const AddArgs& a) {
  check_flat_in("add", "a", a.a);
  check_flat_in("add", "b", a.b);
  checks::same_shape("add", "b", a.b, "a", a.a);
  check_flat_out("add", a.y, "a", a.a);
  checks::same_or_disjoint("add", "y", a.y, "a", a.a);
  checks::same_or_disjoint("add", "y", a.y, "b", a.b);
}

namespace ref {

void unary(const UnaryArgs& a) {
  validate(a);
  const float* x = f32_data(a.x);
  float* y = f32_data(a.y);
  const int64_t n = a.x.numel();
  for (int64_t i = 0; i < n; ++i) {
    const double v = x[i];
    double r = 0;
    switch (a.op) {
      case UnaryOp::kSilu: r = silu(v); break;
      case UnaryOp::kGelu: r = gelu(x[i]); break;
      case UnaryOp::kGeluTanh: r = gelu_tanh(x[i]); break;
      case UnaryOp::kSoftplus: r = softplus(v); break;
    }
    y[i] = static_cast<float>(r);
  }
}

void silu_mul(const SiluMulArgs& a) {
  validate(a);
  // Rows of `width` elements, each view's rows `ld` apart (a contiguous view: one row of all).
  const bool rows = a.gate.shape.rank() == 2;
  const int64_t n_rows = rows ? a.gate.shape[0] : 1, width = rows ? a.gate.shape[1] : a.gate.numel();
  const int64_t lg = rows ? a.gate.strides[0] : 0, lu = rows ? a.up.strides[0] : 0, ly = rows ? a.y.strides[0] : 0;
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* gate = f32_data(a.gate) + r * lg;
    const float* up = f32_data(a.up) + r * lu;
    float* y = f32_data(a.y) + r * ly;
    for (int64_t i = 0; i < width; ++i) y[i] = static_cast<float>(silu(gate[i]) * up[i]);
  }
}

void add(const AddArgs& a) {
  validate(a);
  const float* x = f32_data(a.a);
  const float* z = f32_data(a.b);
  float* y = f32_data(a.y);
  const int64_t n = a.a.numel();
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] + z[i];  // f32 addition is exact-rounded: the definition
}

}  // namespace ref
}  // namespace bf::ops
