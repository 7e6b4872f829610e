// Row-wise ops — RMSNorm, LayerNorm, softmax, RoPE — on every backend variant against the scalar
// references (ops::ref), at widths that exercise whole vectors, tails and single elements, and
// the same bits at 1 and 3 threads.
#include <cmath>
#include <limits>

#include "elementwise_support.h"
#include "ops/reference.h"

namespace bf::conformance {
namespace {

struct RowShape {
  int64_t rows, dim;
};
// 1×1, tails only, odd widths, a wide row, and enough rows for several chunks per thread.
constexpr RowShape kRowShapes[] = {{1, 1}, {3, 7}, {5, 101}, {2, 4099}, {64, 1000}, {1, 4096}};

std::vector<float> affine(size_t n, uint64_t seed, float center, float scale) {
  auto v = random_normal(n, seed, scale);
  for (float& x : v) x += center;
  return v;
}

// Norm results are O(|weight|·|x|/rms); f32 sums against double ones.
constexpr Tolerance kNormTol{2e-6, 2e-6};

TEST_P(BackendTest, RmsNormMatchesReference) {
  uint64_t seed = 1;
  for (const RowShape& shape : kRowShapes) {
    const int64_t rows = shape.rows, dim = shape.dim;  // not a structured binding: clang 14 cannot capture one
    const auto x = random_normal(rows * dim, seed++, 2.0f);
    const auto weight = affine(dim, seed++, 1.0f, 0.2f), bias = random_normal(dim, seed++, 0.1f);
    for (const bool use_weight : {false, true}) {
      for (const bool use_bias : {false, true}) {
        RmsNormArgs a;
        a.x = const_view_of(x, Shape{rows, dim});
        if (use_weight) a.weight = const_view_of(weight, Shape{dim});
        if (use_bias) a.bias = const_view_of(bias, Shape{dim});
        a.eps = 1e-6f;
        std::vector<float> want(x.size());
        a.y = view_of(want, Shape{rows, dim});
        ops::ref::rms_norm(a);
        check_op(
            backend(), GetParam(),
            [&](Backend& b, std::vector<float>& out) {
              RmsNormArgs c = a;
              c.y = view_of(out, Shape{rows, dim});
              b.rms_norm(c);
            },
            want, kNormTol, cat("rms_norm [", rows, ", ", dim, "] weight ", use_weight, " bias ", use_bias));
      }
    }
  }
}

TEST_P(BackendTest, LayerNormMatchesReference) {
  uint64_t seed = 100;
  for (const RowShape& shape : kRowShapes) {
    const int64_t rows = shape.rows, dim = shape.dim;
    const auto x = affine(rows * dim, seed++, 3.0f, 1.5f);  // non-zero mean: the centering matters
    const auto weight = affine(dim, seed++, 1.0f, 0.2f), bias = random_normal(dim, seed++, 0.1f);
    for (const bool use_weight : {false, true}) {
      for (const bool use_bias : {false, true}) {
        LayerNormArgs a;
        a.x = const_view_of(x, Shape{rows, dim});
        if (use_weight) a.weight = const_view_of(weight, Shape{dim});
        if (use_bias) a.bias = const_view_of(bias, Shape{dim});
        std::vector<float> want(x.size());
        a.y = view_of(want, Shape{rows, dim});
        ops::ref::layer_norm(a);
        // dim 1: x − mean is exactly 0, y = bias; the tolerance still applies to the others.
        check_op(
            backend(), GetParam(),
            [&](Backend& b, std::vector<float>& out) {
              LayerNormArgs c = a;
              c.y = view_of(out, Shape{rows, dim});
              b.layer_norm(c);
            },
            want, {5e-6, 5e-6}, cat("layer_norm [", rows, ", ", dim, "] weight ", use_weight, " bias ", use_bias));
      }
    }
  }
}

TEST_P(BackendTest, NormsRunInPlaceAndOnPaddedRows) {
  const int64_t rows = 9, dim = 37, stride = 48;
  std::vector<float> storage = random_normal(rows * stride, 7, 1.5f);
  const auto weight = affine(dim, 8, 1.0f, 0.2f);
  // Reference on a dense copy.
  std::vector<float> dense(rows * dim), want(rows * dim);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < dim; ++i) dense[r * dim + i] = storage[r * stride + i];
  LayerNormArgs ref_args;
  ref_args.x = const_view_of(dense, Shape{rows, dim});
  ref_args.weight = const_view_of(weight, Shape{dim});
  ref_args.y = view_of(want, Shape{rows, dim});
  ops::ref::layer_norm(ref_args);
  // In place on the padded rows: y is x.
  LayerNormArgs a = ref_args;
  a.y = strided_rows(storage, rows, dim, stride);
  a.x = to_const(a.y);
  const std::vector<float> before = storage;
  backend().layer_norm(a);
  std::vector<float> got(rows * dim);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < stride; ++i) {
      if (i < dim)
        got[r * dim + i] = storage[r * stride + i];
      else
        EXPECT_EQ(storage[r * stride + i], before[r * stride + i]) << "padding at row " << r << " was written";
    }
  EXPECT_TRUE(all_close(got, want, kNormTol));
}

TEST_P(BackendTest, SoftmaxMatchesReference) {
  uint64_t seed = 200;
  for (const RowShape& shape : kRowShapes) {
    const int64_t rows = shape.rows, dim = shape.dim;
    auto x = random_normal(rows * dim, seed++, 8.0f);
    x[0] = 95.0f;  // e^95 overflows f32 without subtracting the max
    SoftmaxArgs a;
    a.x = const_view_of(x, Shape{rows, dim});
    std::vector<float> want(x.size());
    a.y = view_of(want, Shape{rows, dim});
    ops::ref::softmax(a);
    check_op(
        backend(), GetParam(),
        [&](Backend& b, std::vector<float>& out) {
          SoftmaxArgs c = a;
          c.y = view_of(out, Shape{rows, dim});
          b.softmax(c);
        },
        want, {1e-8, 1e-5}, cat("softmax [", rows, ", ", dim, "]"));
    std::vector<float> in_place = x;  // y is x: the same bits as out of place
    std::vector<float> out_of_place(x.size());
    a.y = view_of(out_of_place, Shape{rows, dim});
    backend().softmax(a);
    a.x = const_view_of(in_place, Shape{rows, dim});
    a.y = view_of(in_place, Shape{rows, dim});
    backend().softmax(a);
    EXPECT_TRUE(bitwise_equal(in_place, out_of_place)) << "softmax in place [" << rows << ", " << dim << "]";
  }
}

TEST_P(BackendTest, SoftmaxOfMaskedAndNonFiniteRowsIsJaxs) {
  constexpr float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const int64_t dim = 19;
  std::vector<float> x(6 * dim, 0.5f);
  for (int64_t i = 0; i < dim; ++i) x[0 * dim + i] = -inf;     // fully masked: NaN (−inf − −inf)
  for (int64_t i = 0; i < dim; i += 2) x[1 * dim + i] = -inf;  // partly masked: 0 there
  x[2 * dim + 17] = inf;                                       // +inf: NaN everywhere
  x[3 * dim + 18] = nan;                                       // NaN in the tail lanes
  x[4 * dim + 0] = -1e30f;                                     // underflows to exactly 0
  std::vector<float> want(x.size());
  SoftmaxArgs a;
  a.x = const_view_of(x, Shape{6, dim});
  a.y = view_of(want, Shape{6, dim});
  ops::ref::softmax(a);
  for (int64_t i = 0; i < dim; ++i) {
    EXPECT_TRUE(std::isnan(want[0 * dim + i]) && std::isnan(want[2 * dim + i]) && std::isnan(want[3 * dim + i]));
    if (i % 2 == 0) {
      EXPECT_EQ(want[1 * dim + i], 0.0f);
    }
  }
  EXPECT_EQ(want[4 * dim], 0.0f);
  check_op(
      backend(), GetParam(),
      [&](Backend& b, std::vector<float>& out) {
        SoftmaxArgs c = a;
        c.y = view_of(out, Shape{6, dim});
        b.softmax(c);
      },
      want, {1e-8, 1e-5}, "softmax of masked / non-finite rows");
}

TEST_P(BackendTest, RopeMatchesReference) {
  struct Case {
    int64_t rows, heads, head_dim;
    float theta;
  };
  // head_dim 2 (one frequency), 40 (a tail of 4 at 16 lanes), 128 and 100 (Llama-ish, not a power
  // of two), many rows for the threads.
  const Case cases[] = {
      {3, 1, 2, 10000.0f}, {5, 3, 40, 10000.0f}, {7, 4, 128, 500000.0f}, {2, 2, 100, 1e6f}, {96, 4, 64, 10000.0f}};
  uint64_t seed = 300;
  for (const Case& k : cases) {
    const auto x = random_normal(k.rows * k.heads * k.head_dim, seed++, 1.0f);
    std::vector<int32_t> positions(k.rows);
    for (int64_t r = 0; r < k.rows; ++r) positions[r] = static_cast<int32_t>((r * 7919) % 40000);
    positions[0] = 0;
    if (k.rows > 1) positions[1] = 3'999'999;     // the edge of the vector sincos's range
    if (k.rows > 2) positions[2] = -123'456'789;  // past it: the exact fallback (and negative)
    const Shape shape{k.rows, k.heads, k.head_dim};
    std::vector<float> want = x;
    RopeArgs a;
    a.x = view_of(want, shape);
    a.positions = positions.data();
    a.theta = k.theta;
    ops::ref::rope(a);
    check_op(
        backend(), GetParam(),
        [&](Backend& b, std::vector<float>& out) {
          out = x;
          RopeArgs c = a;
          c.x = view_of(out, shape);
          b.rope(c);
        },
        want, {1e-6, 1e-6}, cat("rope ", shape.to_string(), " theta ", k.theta));
  }
}

TEST_P(BackendTest, RopeRotatesAHeadSliceOfAFusedBuffer) {
  // q of a fused [rows, q_heads + 2·kv_heads, head_dim] buffer: strides skip the k and v heads,
  // which must stay untouched.
  const int64_t rows = 4, q_heads = 2, all_heads = 4, head_dim = 24;
  const auto fused = random_normal(rows * all_heads * head_dim, 400, 1.0f);
  const std::vector<int32_t> positions = {5, 6, 7, 1000};
  TensorView q;
  q.dtype = DType::kF32;
  q.shape = Shape{rows, q_heads, head_dim};
  q.strides = Shape{all_heads * head_dim, head_dim, 1};

  std::vector<float> dense(rows * q_heads * head_dim);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < q_heads * head_dim; ++i)
      dense[r * q_heads * head_dim + i] = fused[r * all_heads * head_dim + i];
  RopeArgs ref_args;
  ref_args.x = view_of(dense, Shape{rows, q_heads, head_dim});
  ref_args.positions = positions.data();
  ops::ref::rope(ref_args);

  std::vector<float> got = fused;
  q.data = reinterpret_cast<std::byte*>(got.data());
  RopeArgs a = ref_args;
  a.x = q;
  backend().rope(a);
  std::vector<float> got_q(dense.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < all_heads * head_dim; ++i) {
      const size_t at = r * all_heads * head_dim + i;
      if (i < q_heads * head_dim)
        got_q[r * q_heads * head_dim + i] = got[at];
      else
        EXPECT_EQ(got[at], fused[at]) << "k / v element " << at << " changed";
    }
  EXPECT_TRUE(all_close(got_q, dense, {1e-6, 1e-6}));
}

}  // namespace
}  // namespace bf::conformance
