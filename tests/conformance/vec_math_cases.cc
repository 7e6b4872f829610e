// The CPU kernels' own exp / erfc / log1p / sin / cos (src/backends/cpu/vec_math-inl.h) against
// the C library in double, at every ISA level this machine runs, over the whole float range:
// dense sweeps through the bit patterns, the edges of overflow and underflow, ±0, ±inf and NaN.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "backends/cpu/isa.h"
#include "backends/cpu/vec_math.h"
#include "batch_forge/core/error.h"
#include "ops/convert.h"

namespace bf::cpu {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

std::vector<Isa> supported_isas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512})
    if (isa_supported(isa)) out.push_back(isa);
  return out;
}

// Every `step`-th float bit pattern in [lo, hi] (both finite, same sign handled by the caller).
std::vector<float> sweep(float lo, float hi, uint32_t step) {
  std::vector<float> out;
  auto add_range = [&](float a, float b) {  // 0 <= a <= b
    for (uint32_t bits = f32_to_bits(a); bits <= f32_to_bits(b); bits += step) out.push_back(bits_to_f32(bits));
    out.push_back(b);
  };
  if (lo < 0) {
    const size_t first = out.size();
    add_range(0.0f, -lo);
    for (size_t i = first; i < out.size(); ++i) out[i] = -out[i];
  }
  if (hi >= 0) add_range(lo > 0 ? lo : 0.0f, hi);
  return out;
}

struct Accuracy {
  double max_rel = 0;  // over results with |want| >= min_normal
  double max_abs = 0;  // over the others
  std::string worst;   // where max_rel was reached
};

// Compares fn at `isa` with want(x) (double); rel where |want| ≥ normal_from, abs elsewhere. NaN
// must match NaN, inf must match inf of the same sign.
::testing::AssertionResult check(Isa isa, VecMathFn fn, const std::vector<float>& xs,
                                 const std::function<double(double)>& want, double max_rel, double max_abs,
                                 double normal_from = FLT_MIN) {
  std::vector<float> got(xs.size());
  eval_vec_math(isa, fn, xs.data(), got.data(), static_cast<int64_t>(xs.size()));
  Accuracy acc;
  for (size_t i = 0; i < xs.size(); ++i) {
    const double w = static_cast<float>(want(xs[i]));  // the correctly rounded f32 result (nearly)
    const double g = got[i];
    if (std::isnan(w) || std::isnan(g) || std::isinf(w) || std::isinf(g)) {
      if ((std::isnan(w) != std::isnan(g)) || (!std::isnan(w) && w != g))
        return ::testing::AssertionFailure() << isa_name(isa) << ": f(" << xs[i] << ") = " << g << ", want " << w;
      continue;
    }
    if (std::abs(w) >= normal_from) {
      const double rel = std::abs(g - w) / std::abs(w);
      if (rel > acc.max_rel) acc.max_rel = rel, acc.worst = cat("f(", xs[i], ") = ", g, " want ", w);
    } else {
      acc.max_abs = std::max(acc.max_abs, std::abs(g - w));
    }
  }
  if (acc.max_rel > max_rel || acc.max_abs > max_abs)
    return ::testing::AssertionFailure() << isa_name(isa) << ": max rel err " << acc.max_rel << " (" << acc.worst
                                         << "), max abs err " << acc.max_abs << " below " << normal_from;
  return ::testing::AssertionSuccess() << isa_name(isa) << ": max rel err " << acc.max_rel << ", max abs err "
                                       << acc.max_abs;
}

// An odd length, so every level runs its partial-vector tail too.
std::vector<float> with_specials(std::vector<float> xs, std::initializer_list<float> extra) {
  xs.insert(xs.end(), extra);
  xs.insert(xs.end(), {0.0f, -0.0f, kInf, -kInf, kNaN, -kNaN});
  if (xs.size() % 2 == 0) xs.push_back(1.0f);
  return xs;
}

TEST(VecMath, ExpOverTheWholeRange) {
  const auto xs = with_specials(sweep(-110.0f, 100.0f, 997), {-103.972f, -103.28f, -87.3365f, 88.7228f, 88.7229f,
                                                              -150.0f, 1e-30f, -1e-30f, 1e-45f, 3e38f, -3e38f});
  for (Isa isa : supported_isas()) {
    const auto r = check(
        isa, VecMathFn::kExp, xs, [](double x) { return std::exp(x); }, 3e-7, 2.0 * 1.4e-45);
    EXPECT_TRUE(r);
    std::printf("  exp   %s\n", r.message());
  }
}

TEST(VecMath, ErfcOverTheWholeRange) {
  const auto xs = with_specials(sweep(-12.0f, 12.0f, 613),
                                {10.0f, 10.05f, 10.5f, 11.0f, 9.3f, -9.3f, 1e-20f, -1e-20f, 1e30f, -1e30f});
  for (Isa isa : supported_isas()) {
    const auto r = check(
        isa, VecMathFn::kErfc, xs, [](double x) { return std::erfc(x); }, 6e-7, 4.0 * 1.4e-45);
    EXPECT_TRUE(r);
    std::printf("  erfc  %s\n", r.message());
  }
}

TEST(VecMath, Log1pOnTheUnitInterval) {
  auto xs = sweep(0.0f, 1.0f, 293);
  xs = with_specials(xs, {1e-38f, 1e-40f, 0.5f, 0.999999f});
  std::erase_if(xs, [](float x) { return !(std::isnan(x) || (x >= 0 && x <= 1)); });  // its domain, and NaN
  xs.push_back(kNaN);
  for (Isa isa : supported_isas()) {
    // Below 4·FLT_MIN, x/(2+x) is subnormal: exact to 1.4e-45, not to relative 1e-7.
    const auto r = check(
        isa, VecMathFn::kLog1pUnit, xs, [](double x) { return std::log1p(x); }, 3e-7, 2.0 * 1.4e-45, 4 * FLT_MIN);
    EXPECT_TRUE(r);
    std::printf("  log1p %s\n", r.message());
  }
}

TEST(VecMath, SinCosUpToTheirRangeLimit) {
  // Absolute error is what a rotation cares about; near the zeros of sin / cos relative error of
  // the result is not meaningful.
  auto xs = sweep(-4.0e6f, 4.0e6f, 3989);
  for (float x : {0.7853982f, 1.5707964f, 3.1415927f, 4.712389f, 6.2831855f, -1.5707964f, 1e-30f, 4.0e6f, -4.0e6f})
    xs.push_back(x);
  xs.push_back(kNaN);
  for (Isa isa : supported_isas()) {
    for (VecMathFn fn : {VecMathFn::kSin, VecMathFn::kCos}) {
      const auto want = [fn](double x) { return fn == VecMathFn::kSin ? std::sin(x) : std::cos(x); };
      const auto r = check(isa, fn, xs, want, INFINITY, 2e-7, INFINITY);
      EXPECT_TRUE(r);
      std::printf("  %s   %s\n", fn == VecMathFn::kSin ? "sin" : "cos", r.message());
    }
  }
}

}  // namespace
}  // namespace bf::cpu
