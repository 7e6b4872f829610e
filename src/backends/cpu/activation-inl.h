// Per ISA level (expanded by foreach_isa.h): element-wise loops of the activations, the SwiGLU
// gate and the residual add. Each formula follows jax.nn's, operation for operation where that
// costs nothing, so the roundings match too.
namespace {

// 1 / (1 + e^−z) without overflow: with e = e^−|z| ∈ [0, 1], 1/(1 + e) for z ≥ 0 and e/(1 + e) for
// z < 0, so that very negative z keeps its tiny value instead of 1/inf = 0.
BF_SIMD_FN BF_INLINE Vec sigmoid(Vec z) {
  const Vec e = exp(-abs(z));
  return select(z < zero(), e, set1(1.0f)) / (set1(1.0f) + e);
}

// x · sigmoid(x), as jax.nn.silu: NaN for −inf (−inf · 0).
BF_SIMD_FN BF_INLINE Vec silu(Vec x) { return x * sigmoid(x); }

// x/2 · erfc(−x/√2), jax.nn.gelu(approximate=False).
BF_SIMD_FN BF_INLINE Vec gelu(Vec x) { return (set1(0.5f) * x) * erfc(-x * set1(0.707106769f)); }

// jax.nn.gelu(approximate=True) = x · (1 + tanh u) / 2 with u = √(2/π)·(x + 0.044715 x³) (u
// rounded as JAX rounds it), computed as x · sigmoid(2u): the same function, since
// (1 + tanh u)/2 = 1/(1 + e^−2u), needing one exp and no tanh, and keeping its relative accuracy
// where 1 + tanh u cancels.
BF_SIMD_FN BF_INLINE Vec gelu_tanh(Vec x) {
  const Vec u = set1(0.797884583f) * (x + set1(0.044715f) * (x * x * x));
  return x * sigmoid(u + u);
}

// jax.nn.softplus = logaddexp(x, 0) = max(x, 0) + log1p(e^−|x|): no overflow for any x.
BF_SIMD_FN BF_INLINE Vec softplus(Vec x) { return max(x, zero()) + log1p_unit(exp(-abs(x))); }

template <UnaryOp kOp>
BF_SIMD_FN BF_INLINE void unary_loop(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i += kLanes) {
    const int64_t m = n - i;
    const Vec v = load_n(x + i, m);
    Vec r;
    if constexpr (kOp == UnaryOp::kSilu) r = silu(v);
    if constexpr (kOp == UnaryOp::kGelu) r = gelu(v);
    if constexpr (kOp == UnaryOp::kGeluTanh) r = gelu_tanh(v);
    if constexpr (kOp == UnaryOp::kSoftplus) r = softplus(v);
    store_n(y + i, r, m);
  }
}

BF_SIMD_FN void unary_range(UnaryOp op, const float* x, float* y, int64_t n) {
  switch (op) {
    case UnaryOp::kSilu: return unary_loop<UnaryOp::kSilu>(x, y, n);
    case UnaryOp::kGelu: return unary_loop<UnaryOp::kGelu>(x, y, n);
    case UnaryOp::kGeluTanh: return unary_loop<UnaryOp::kGeluTanh>(x, y, n);
    case UnaryOp::kSoftplus: return unary_loop<UnaryOp::kSoftplus>(x, y, n);
  }
}

BF_SIMD_FN void silu_mul_range(const float* gate, const float* up, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i += kLanes) {
    const int64_t m = n - i;
    store_n(y + i, silu(load_n(gate + i, m)) * load_n(up + i, m), m);
  }
}

BF_SIMD_FN void add_range(const float* a, const float* b, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 2 * kLanes <= n; i += 2 * kLanes) {
    store(y + i, load(a + i) + load(b + i));
    store(y + i + kLanes, load(a + i + kLanes) + load(b + i + kLanes));
  }
  for (; i < n; i += kLanes) store_n(y + i, load_n(a + i, n - i) + load_n(b + i, n - i), n - i);
}

}  // namespace
