// Element-wise ops — SiLU, GELU (erf and tanh), softplus, silu_mul, add — on every backend
// variant against the scalar references (ops::ref, in double), including ±0, ±inf, NaN, huge and
// tiny inputs, and the same bits at 1 and 3 threads.
#include <cfloat>
#include <cmath>
#include <limits>

#include "elementwise_support.h"
#include "ops/reference.h"

namespace bf::conformance {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Random values at several scales, the special values, and an odd length (so every ISA level
// runs its tail).
std::vector<float> activation_inputs(size_t n_random, uint64_t seed) {
  std::vector<float> x = random_normal(n_random, seed, 4.0f);
  const auto wide = random_normal(n_random / 4 + 1, seed + 1, 30.0f);
  x.insert(x.end(), wide.begin(), wide.end());
  for (float v :
       {0.0f,   -0.0f, 1e-30f, -1e-30f, 1e-45f, 1.0f,   -1.0f,   5.0f,  -5.0f,  9.9f,    -9.9f,    14.0f, -14.0f, 20.0f,
        -20.0f, 87.0f, -87.0f, 88.8f,   -88.8f, 100.0f, -100.0f, 1e20f, -1e20f, FLT_MAX, -FLT_MAX, kInf,  -kInf,  kNaN})
    x.push_back(v);
  if (x.size() % 2 == 0) x.push_back(0.3f);
  return x;
}

const char* unary_name(UnaryOp op) {
  switch (op) {
    case UnaryOp::kSilu: return "silu";
    case UnaryOp::kGelu: return "gelu";
    case UnaryOp::kGeluTanh: return "gelu_tanh";
    case UnaryOp::kSoftplus: return "softplus";
  }
  return "?";
}

TEST_P(BackendTest, UnaryOpsMatchReference) {
  // Small: every special value; large: several chunks, for the thread check.
  for (const size_t n : {size_t{997}, size_t{70001}}) {
    const auto x = activation_inputs(n, n);
    const Shape shape{static_cast<int64_t>(x.size())};
    for (const UnaryOp op : {UnaryOp::kSilu, UnaryOp::kGelu, UnaryOp::kGeluTanh, UnaryOp::kSoftplus}) {
      UnaryArgs a;
      a.op = op;
      a.x = const_view_of(x, shape);
      std::vector<float> want(x.size());
      a.y = view_of(want, shape);
      ops::ref::unary(a);
      // f32 exp / erfc of a few ulps, and JAX's f32 rounding of the argument (−x·√½, √(2/π)·(…)),
      // which the reference computes in double.
      check_op(
          backend(), GetParam(),
          [&](Backend& b, std::vector<float>& out) {
            UnaryArgs c = a;
            c.y = view_of(out, shape);
            b.unary(c);
          },
          want, {1e-37, 1e-6}, cat(unary_name(op), " over ", x.size(), " values"));
      std::vector<float> in_place = x, out_of_place(x.size());  // y is x: the same bits
      a.y = view_of(out_of_place, shape);
      backend().unary(a);
      a.x = const_view_of(in_place, shape);
      a.y = view_of(in_place, shape);
      backend().unary(a);
      EXPECT_TRUE(bitwise_equal(in_place, out_of_place)) << unary_name(op) << " in place";
    }
  }
}

TEST_P(BackendTest, UnaryOpsAtTheirLimitsAreJaxs) {
  // The values jax.nn gives (JAX_PLATFORMS=cpu, f32), beyond what the reference comparison shows.
  const std::vector<float> x = {-kInf, kInf, kNaN, -100.0f, 1e20f, -1e20f, 0.0f};
  const Shape shape{static_cast<int64_t>(x.size())};
  auto run = [&](UnaryOp op) {
    std::vector<float> y(x.size());
    UnaryArgs a;
    a.op = op;
    a.x = const_view_of(x, shape);
    a.y = view_of(y, shape);
    backend().unary(a);
    return y;
  };
  const auto silu = run(UnaryOp::kSilu), gelu = run(UnaryOp::kGelu), gelu_tanh = run(UnaryOp::kGeluTanh),
             softplus = run(UnaryOp::kSoftplus);
  for (const auto* y : {&silu, &gelu, &gelu_tanh}) {
    EXPECT_TRUE(std::isnan((*y)[0]));  // −inf · 0
    EXPECT_EQ((*y)[1], kInf);
    EXPECT_TRUE(std::isnan((*y)[2]));
    EXPECT_EQ((*y)[4], 1e20f);
    EXPECT_EQ((*y)[5], 0.0f);
    EXPECT_TRUE(std::signbit((*y)[5]));  // −0
  }
  EXPECT_LT(std::abs(silu[3]), 1e-40f);
  EXPECT_EQ(softplus[0], 0.0f);
  EXPECT_EQ(softplus[1], kInf);
  EXPECT_TRUE(std::isnan(softplus[2]));
  EXPECT_EQ(softplus[4], 1e20f);
  EXPECT_EQ(softplus[5], 0.0f);
  EXPECT_NEAR(softplus[6], std::log(2.0f), 1e-7);
  EXPECT_EQ(gelu[6], 0.0f);
}

TEST_P(BackendTest, SiluMulMatchesReference) {
  for (const size_t n : {size_t{1}, size_t{13}, size_t{11008}, size_t{3 * 11008 + 5}}) {
    const auto gate = random_normal(n, 500 + n, 3.0f), up = random_normal(n, 600 + n, 1.0f);
    const Shape shape{static_cast<int64_t>(n)};
    SiluMulArgs a;
    a.gate = const_view_of(gate, shape);
    a.up = const_view_of(up, shape);
    std::vector<float> want(n);
    a.y = view_of(want, shape);
    ops::ref::silu_mul(a);
    check_op(
        backend(), GetParam(),
        [&](Backend& b, std::vector<float>& out) {
          SiluMulArgs c = a;
          c.y = view_of(out, shape);
          b.silu_mul(c);
        },
        want, {1e-30, 1e-6}, cat("silu_mul over ", n));
    std::vector<float> in_place = gate, out_of_place(n);  // y is gate: the same bits
    a.y = view_of(out_of_place, shape);
    backend().silu_mul(a);
    a.gate = const_view_of(in_place, shape);
    a.y = view_of(in_place, shape);
    backend().silu_mul(a);
    EXPECT_TRUE(bitwise_equal(in_place, out_of_place)) << "silu_mul in place over " << n;
  }
}

// The two halves of a fused gate|up output read in place ([rows, width], rows 2·width apart):
// the reference's values, and each row the bits of the same row computed from contiguous copies.
TEST_P(BackendTest, SiluMulReadsRowsApart) {
  for (const int64_t width : {int64_t{1}, int64_t{13}, int64_t{1536}}) {
    const int64_t rows = 37;
    const auto gu = random_normal(static_cast<size_t>(rows * 2 * width), 700 + width, 3.0f);
    auto rows_apart = [&](const float* p) {
      ConstTensorView v;
      v.data = reinterpret_cast<const std::byte*>(p);
      v.shape = Shape{rows, width};
      v.strides = Shape{2 * width, 1};
      return v;
    };
    const Shape shape{rows, width};
    SiluMulArgs a;
    a.gate = rows_apart(gu.data());
    a.up = rows_apart(gu.data() + width);
    std::vector<float> want(static_cast<size_t>(rows * width));
    a.y = view_of(want, shape);
    ops::ref::silu_mul(a);
    check_op(
        backend(), GetParam(),
        [&](Backend& b, std::vector<float>& out) {
          SiluMulArgs c = a;
          c.y = view_of(out, shape);
          b.silu_mul(c);
        },
        want, {1e-30, 1e-6}, cat("silu_mul over rows of ", width, " apart"));
    std::vector<float> gate(want.size()), up(want.size()), apart(want.size()), packed(want.size());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < width; ++j) {
        gate[r * width + j] = gu[r * 2 * width + j];
        up[r * width + j] = gu[r * 2 * width + width + j];
      }
    a.y = view_of(apart, shape);
    backend().silu_mul(a);
    backend().silu_mul({const_view_of(gate, shape), const_view_of(up, shape), view_of(packed, shape)});
    EXPECT_TRUE(bitwise_equal(apart, packed)) << "silu_mul over rows of " << width << " apart";
  }
}

// A view that is neither contiguous nor [rows, width] with rows apart is refused by name.
TEST_P(BackendTest, SiluMulRejectsScatteredViews) {
  std::vector<float> buf(64, 1.0f), up(16, 1.0f), out(16);
  ConstTensorView cols;  // every other element: stride 2 along the row
  cols.data = reinterpret_cast<const std::byte*>(buf.data());
  cols.shape = Shape{4, 4};
  cols.strides = Shape{16, 2};
  SiluMulArgs a{cols, const_view_of(up, Shape{4, 4}), view_of(out, Shape{4, 4})};
  try {
    backend().silu_mul(a);
    ADD_FAILURE() << "a view with stride 2 along its rows was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(e.message().find("gate must have stride 1 in its last dim"), std::string::npos) << e.what();
  }
}

TEST_P(BackendTest, AddIsExactAndRunsInPlace) {
  for (const size_t n : {size_t{1}, size_t{31}, size_t{4096 * 16 + 3}}) {
    auto x = random_normal(n, 700 + n, 1.0f);
    const auto z = random_normal(n, 800 + n, 1.0f);
    const Shape shape{1, static_cast<int64_t>(n)};  // any shape: add is element-wise
    AddArgs a;
    a.a = const_view_of(x, shape);
    a.b = const_view_of(z, shape);
    std::vector<float> want(n);
    a.y = view_of(want, shape);
    ops::ref::add(a);
    check_op(
        backend(), GetParam(),
        [&](Backend& b, std::vector<float>& out) {
          AddArgs c = a;
          c.y = view_of(out, shape);
          b.add(c);
        },
        want, {0, 0}, cat("add over ", n));
    a.y = view_of(x, shape);  // residual stream updated in place: y is a
    backend().add(a);
    EXPECT_TRUE(bitwise_equal(x, want));
  }
}

}  // namespace
}  // namespace bf::conformance
