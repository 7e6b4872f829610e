// Per ISA level (expanded by foreach_isa.h): softmax over each row in three passes — the max, then
// e^(x − max) stored into y while summing, then y scaled by 1 / sum. The row is read from the
// cache after the first pass for any realistic width. NaN, +inf and all-−inf rows reach every
// element through the sum as NaN, as in JAX; no special case.
namespace {

BF_SIMD_FN void softmax_rows(const SoftmaxRows& p, int64_t begin, int64_t end) {
  const int64_t n = p.dim;
  if (n == 0) return;
  const Vec neg_inf = set1(-INFINITY);
  for (int64_t r = begin; r < end; ++r) {
    const float* x = p.x + r * p.x_stride;
    float* y = p.y + r * p.y_stride;

    Vec m0 = neg_inf, m1 = neg_inf, m2 = neg_inf, m3 = neg_inf;
    int64_t i = 0;
    for (; i + 4 * kLanes <= n; i += 4 * kLanes) {
      m0 = max(m0, load(x + i));
      m1 = max(m1, load(x + i + kLanes));
      m2 = max(m2, load(x + i + 2 * kLanes));
      m3 = max(m3, load(x + i + 3 * kLanes));
    }
    for (; i < n; i += kLanes) {
      const int64_t m = n - i;
      m0 = max(m0, m >= kLanes ? load(x + i) : select(iota() < set1(static_cast<float>(m)), load_n(x + i, m), neg_inf));
    }
    const Vec row_max = set1(reduce_max(max(max(m0, m1), max(m2, m3))));

    Vec s0 = zero(), s1 = zero(), s2 = zero(), s3 = zero();
    i = 0;
    for (; i + 4 * kLanes <= n; i += 4 * kLanes) {
      const Vec e0 = exp(load(x + i) - row_max), e1 = exp(load(x + i + kLanes) - row_max);
      const Vec e2 = exp(load(x + i + 2 * kLanes) - row_max), e3 = exp(load(x + i + 3 * kLanes) - row_max);
      store(y + i, e0);
      store(y + i + kLanes, e1);
      store(y + i + 2 * kLanes, e2);
      store(y + i + 3 * kLanes, e3);
      s0 = s0 + e0;
      s1 = s1 + e1;
      s2 = s2 + e2;
      s3 = s3 + e3;
    }
    for (; i < n; i += kLanes) {
      const int64_t m = n - i;
      const Vec e = exp(load_n(x + i, m) - row_max);
      store_n(y + i, e, m);
      s0 = s0 + keep_first(e, m);
    }
    const Vec inv = set1(1.0f / reduce_sum((s0 + s1) + (s2 + s3)));

    for (i = 0; i < n; i += kLanes) {
      const int64_t m = n - i;
      store_n(y + i, load_n(y + i, m) * inv, m);
    }
  }
}

}  // namespace
