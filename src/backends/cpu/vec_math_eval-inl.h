// Per ISA level (expanded by foreach_isa.h): the loop behind eval_vec_math (vec_math.h).
namespace {

BF_SIMD_FN void eval_math(VecMathFn fn, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i += kLanes) {
    const int64_t m = n - i;
    const Vec v = load_n(x + i, m);
    Vec r = v, s, c;
    switch (fn) {
      case VecMathFn::kExp: r = exp(v); break;
      case VecMathFn::kErfc: r = erfc(v); break;
      case VecMathFn::kLog1pUnit: r = log1p_unit(v); break;
      case VecMathFn::kSin:
      case VecMathFn::kCos:
        sincos(v, &s, &c);
        r = fn == VecMathFn::kSin ? s : c;
        break;
    }
    store_n(y + i, r, m);
  }
}

}  // namespace
