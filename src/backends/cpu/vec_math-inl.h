// Per ISA level (expanded by foreach_isa.h inside bf::cpu::simd::<level>; no include guard):
// tail-safe loads and stores, and the transcendental functions the element-wise kernels need,
// built from the operations of simd.h. Accuracy, checked against the C library over the whole
// float range (tests/conformance/vec_math_cases.cc), wherever the result is a normal float:
// relative error at most 1.2e-7 for exp, 3.6e-7 for erfc, 2.4e-7 for log1p; sin and cos within
// 1.2e-7 absolute for |x| ≤ kSinCosMaxArg. Coefficients are Taylor series unless a comment says
// otherwise.

// The first min(n, kLanes) floats at p; the other lanes are 0 and their memory is not touched.
BF_SIMD_FN BF_INLINE Vec load_n(const float* p, int64_t n) { return n >= kLanes ? load(p) : load_partial(p, n); }
BF_SIMD_FN BF_INLINE void store_n(float* p, Vec a, int64_t n) {
  if (n >= kLanes)
    store(p, a);
  else
    store_partial(p, a, n);
}

// a with the lanes from n on set to 0.
BF_SIMD_FN BF_INLINE Vec keep_first(Vec a, int64_t n) {
  return n >= kLanes ? a : select(iota() < set1(static_cast<float>(n)), a, zero());
}

// e^x for every float x: +inf → inf, −inf → 0, NaN → NaN; results below FLT_MIN come out
// subnormal rather than flushed. x = n·ln2 + r with |r| ≤ ln2/2, e^r by Taylor to r^7
// (truncation < 6e-9 relative), then scaled by 2^n (ldexp_int: no special case for overflow or
// subnormals).
BF_SIMD_FN BF_INLINE Vec exp(Vec x) {
  // Clamped with x as the second operand so that NaN passes through (min / max return it).
  const Vec xc = min(set1(89.0f), max(set1(-104.0f), x));  // e^-104 rounds to 0, e^89 to inf
  const Vec n = round(xc * set1(1.44269502f));             // log2(e)
  Vec r = mul_add(n, set1(-0.693145752f), xc);             // ln2, high 16 bits: n·hi is exact
  r = mul_add(n, set1(-1.42860677e-06f), r);               // ln2 − hi
  Vec p = set1(1.0f / 5040);
  p = mul_add(p, r, set1(1.0f / 720));
  p = mul_add(p, r, set1(1.0f / 120));
  p = mul_add(p, r, set1(1.0f / 24));
  p = mul_add(p, r, set1(1.0f / 6));
  p = mul_add(p, r, set1(0.5f));
  p = mul_add(p, r, set1(1.0f));
  p = mul_add(p, r, set1(1.0f));
  return ldexp_int(p, n);
}

// erfc(x) for every float x (erfc(−inf) = 2, erfc(inf) = 0, NaN → NaN). For t = |x|:
// erfc(t) = e^(−t²) · erfcx(t), with erfcx(t) = g(y) / (t + 2.5), y = (t − 2.5) / (t + 2.5)
// mapping [0, inf) onto [−1, 1). g is our degree-10 polynomial: Chebyshev interpolation of
// (t + 2.5)·erfcx(t) at 11 nodes in y, converted to powers of y (numpy and scipy.special.erfcx,
// in double); its error is 9e-9 relative in exact arithmetic, 3e-7 once evaluated in f32. t² is
// split into hi + lo exactly (one FMA) so that its rounding does not cost up to 2t² ulps in the
// exponential. erfc(−t) = 2 − erfc(t).
BF_SIMD_FN BF_INLINE Vec erfc(Vec x) {
  const Vec t = min(set1(10.5f), abs(x));  // erfc(10.5) < 2^-160: 0 in f32 from there on; NaN stays
  const Vec inv = set1(1.0f) / (t + set1(2.5f));
  const Vec y = (t - set1(2.5f)) * inv;
  Vec g = set1(-7.292145892e-05f);
  g = mul_add(g, y, set1(2.686559128e-05f));
  g = mul_add(g, y, set1(6.662207888e-04f));
  g = mul_add(g, y, set1(-4.136037896e-04f));
  g = mul_add(g, y, set1(-4.803454969e-03f));
  g = mul_add(g, y, set1(8.382888511e-03f));
  g = mul_add(g, y, set1(2.835886739e-02f));
  g = mul_add(g, y, set1(-1.712494195e-01f));
  g = mul_add(g, y, set1(4.539142549e-01f));
  g = mul_add(g, y, set1(-8.046519160e-01f));
  g = mul_add(g, y, set1(1.054031849e+00f));
  const Vec hi = t * t;
  const Vec lo = mul_add(t, t, -hi);           // t² − hi, exactly
  const Vec e = exp(-hi) * (set1(1.0f) - lo);  // e^(−lo) ≈ 1 − lo: |lo| < 4e-6
  const Vec c = (g * inv) * e;
  return select(x < zero(), set1(2.0f) - c, c);
}

// log(1 + e) for e in [0, 1] (what softplus needs: e = e^(−|x|)), NaN → NaN. With
// s = e / (2 + e) ∈ [0, 1/3]: log(1 + e) = 2·atanh(s) = 2s·(1 + s²/3 + s⁴/5 + … + s¹⁴/15),
// truncation < 2e-9 relative; no cancellation for small e.
BF_SIMD_FN BF_INLINE Vec log1p_unit(Vec e) {
  const Vec s = e / (set1(2.0f) + e);
  const Vec s2 = s * s;
  Vec p = set1(1.0f / 15);
  p = mul_add(p, s2, set1(1.0f / 13));
  p = mul_add(p, s2, set1(1.0f / 11));
  p = mul_add(p, s2, set1(1.0f / 9));
  p = mul_add(p, s2, set1(1.0f / 7));
  p = mul_add(p, s2, set1(1.0f / 5));
  p = mul_add(p, s2, set1(1.0f / 3));
  p = mul_add(p, s2, set1(1.0f));
  return (s + s) * p;
}

// Largest |x| for which sincos keeps its accuracy: the quadrant count k must be exact in f32.
inline constexpr float kSinCosMaxArg = 4.0e6f;

// sin(x) and cos(x) for |x| ≤ kSinCosMaxArg. x = k·π/2 + r, |r| ≤ π/4 (plus rounding), with π/2
// in three f32 parts (Cody–Waite): the first step is exact, so r is accurate to an ulp of r
// whatever k; then Taylor to r^9 (sin) and r^10 (cos), truncation < 3e-9.
BF_SIMD_FN BF_INLINE void sincos(Vec x, Vec* sin_out, Vec* cos_out) {
  const Vec k = round(x * set1(0.636619747f));  // 2/π
  Vec r = mul_add(k, set1(-1.57079637f), x);
  r = mul_add(k, set1(4.37113883e-08f), r);
  r = mul_add(k, set1(1.77635684e-15f), r);
  const Vec r2 = r * r;
  Vec ps = set1(1.0f / 362880);
  ps = mul_add(ps, r2, set1(-1.0f / 5040));
  ps = mul_add(ps, r2, set1(1.0f / 120));
  ps = mul_add(ps, r2, set1(-1.0f / 6));
  const Vec sin_r = mul_add(ps * r2, r, r);
  Vec pc = set1(-1.0f / 3628800);
  pc = mul_add(pc, r2, set1(1.0f / 40320));
  pc = mul_add(pc, r2, set1(-1.0f / 720));
  pc = mul_add(pc, r2, set1(1.0f / 24));
  pc = mul_add(pc, r2, set1(-0.5f));
  const Vec cos_r = mul_add(pc, r2, set1(1.0f));
  // Quadrant q = k mod 4: sin x = (sin r, cos r, −sin r, −cos r)[q], cos x = (cos r, −sin r, −cos r, sin r)[q].
  const VecI q = to_int(k);
  const Mask odd = nonzero(q & set1_i(1));
  const VecI sin_sign = shift_left<30>(q & set1_i(2));
  const VecI cos_sign = shift_left<30>((q + set1_i(1)) & set1_i(2));
  *sin_out = as_float(as_int(select(odd, cos_r, sin_r)) ^ sin_sign);
  *cos_out = as_float(as_int(select(odd, sin_r, cos_r)) ^ cos_sign);
}
