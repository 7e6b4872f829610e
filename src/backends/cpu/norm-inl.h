// Per ISA level (expanded by foreach_isa.h): the row loop shared by RMSNorm and LayerNorm.
// Sums run over four vector accumulators combined in a fixed order, so a row's result depends on
// the ISA level only, never on which thread ran it.
namespace {

// Σ (x[i] − shift)² over a row.
BF_SIMD_FN BF_INLINE float sum_sq_dev(const float* x, int64_t n, float shift) {
  const Vec s = set1(shift);
  Vec a0 = zero(), a1 = zero(), a2 = zero(), a3 = zero();
  int64_t i = 0;
  for (; i + 4 * kLanes <= n; i += 4 * kLanes) {
    const Vec d0 = load(x + i) - s, d1 = load(x + i + kLanes) - s;
    const Vec d2 = load(x + i + 2 * kLanes) - s, d3 = load(x + i + 3 * kLanes) - s;
    a0 = mul_add(d0, d0, a0);
    a1 = mul_add(d1, d1, a1);
    a2 = mul_add(d2, d2, a2);
    a3 = mul_add(d3, d3, a3);
  }
  for (; i < n; i += kLanes) {
    const Vec d = keep_first(load_n(x + i, n - i) - s, n - i);  // lanes past the row would add shift²
    a0 = mul_add(d, d, a0);
  }
  return reduce_sum((a0 + a1) + (a2 + a3));
}

BF_SIMD_FN BF_INLINE float sum(const float* x, int64_t n) {
  Vec a0 = zero(), a1 = zero(), a2 = zero(), a3 = zero();
  int64_t i = 0;
  for (; i + 4 * kLanes <= n; i += 4 * kLanes) {
    a0 = a0 + load(x + i);
    a1 = a1 + load(x + i + kLanes);
    a2 = a2 + load(x + i + 2 * kLanes);
    a3 = a3 + load(x + i + 3 * kLanes);
  }
  for (; i < n; i += kLanes) a0 = a0 + load_n(x + i, n - i);
  return reduce_sum((a0 + a1) + (a2 + a3));
}

// y = (x − shift) · inv · weight + bias, in that order (as Equinox rounds it).
template <bool kWeight, bool kBias>
BF_SIMD_FN BF_INLINE void normalize(const float* x, float* y, int64_t n, float shift, float inv, const float* w,
                                    const float* b) {
  const Vec s = set1(shift), k = set1(inv);
  for (int64_t i = 0; i < n; i += kLanes) {
    const int64_t m = n - i;
    Vec v = (load_n(x + i, m) - s) * k;
    if constexpr (kWeight) v = v * load_n(w + i, m);
    if constexpr (kBias) v = v + load_n(b + i, m);
    store_n(y + i, v, m);
  }
}

BF_SIMD_FN void norm_rows(const NormRows& p, int64_t begin, int64_t end) {
  const int64_t n = p.dim;
  if (n == 0) return;  // rows of nothing: no statistics to take (mean would be 0 / 0)
  for (int64_t r = begin; r < end; ++r) {
    const float* x = p.x + r * p.x_stride;
    float* y = p.y + r * p.y_stride;
    const float mean = p.center ? sum(x, n) / static_cast<float>(n) : 0.0f;
    const float var = sum_sq_dev(x, n, mean) / static_cast<float>(n);  // mean(x²) for RMSNorm
    const float inv = 1.0f / std::sqrt(var + p.eps);
    if (p.weight && p.bias)
      normalize<true, true>(x, y, n, mean, inv, p.weight, p.bias);
    else if (p.weight)
      normalize<true, false>(x, y, n, mean, inv, p.weight, p.bias);
    else if (p.bias)
      normalize<false, true>(x, y, n, mean, inv, p.weight, p.bias);
    else
      normalize<false, false>(x, y, n, mean, inv, p.weight, p.bias);
  }
}

}  // namespace
