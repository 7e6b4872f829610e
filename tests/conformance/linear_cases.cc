// Linear on every backend variant against ops::ref::linear, for every weight type, every kernel
// side (auto, vendor, custom) and shapes that reach every path: GEMV and GEMM, partial panels and
// tiles, k tails (f32 lanes, 4- and 16-block steps), k above the f32 kernels' k-block. q8_0 / q4_0
// also with the weight packed by the backend (LinearArgs::packed): against the reference, and
// each row's bits against the same row computed alone (batch invariance).
//
// Tolerances are bounds, computed per output element from the inputs (not fitted):
//   f32 arithmetic (vendor, our f32 tiles): the dot product of k terms in f32 with any summation
//     order is within (k + 2)·u·Σ|x·w| of the exact value (u = 2⁻²⁴; + |bias|·u for the add).
//   int8 activations (q8_0 / q4_0 custom kernels): x is replaced by q·dx with |x − q·dx| ≤ dx/2,
//     dx = max|x over its block of 32| / 127, which moves the result by at most Σ|w|·dx/2; the
//     f32 part then adds at most (k + 8)·u·(Σ|x·w| + 2·Σ|w|·dx/2).
// The reference accumulates in double, so its own error is far below both.
#include <array>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>

#include "batch_forge/core/error.h"
#include "batch_forge/ops/quant.h"
#include "conformance.h"
#include "ops/convert.h"
#include "ops/reference.h"

namespace bf::conformance {
namespace {

constexpr double kU = 1.0 / (1 << 24);

// A weight [n, k] of any type with random but valid contents.
struct Weight {
  DType dtype = DType::kF32;
  int64_t n = 0, k = 0;
  std::vector<std::byte> bytes;
  std::vector<float> scale;  // [n], f8_e4m3 only

  Shape view_shape;  // when set: a view of the first columns only (rows keep the full stride)

  ConstTensorView view() const {
    ConstTensorView v = ConstTensorView::contiguous(bytes, dtype, Shape{n, k});
    if (view_shape.rank()) v.shape = view_shape;
    return v;
  }
  ConstTensorView scale_view() const { return scale.empty() ? ConstTensorView{} : const_view_of(scale, Shape{n}); }
};

void put_u16(std::byte* p, uint16_t v) { std::memcpy(p, &v, 2); }

Weight random_weight(DType t, int64_t n, int64_t k, uint64_t seed) {
  Weight w;
  w.dtype = t;
  w.n = n;
  w.k = k;
  w.bytes.resize(*dtype_bytes(t, static_cast<uint64_t>(n * k)));
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> block_scale(0.002f, 0.02f);
  std::normal_distribution<float> normal(0.0f, 0.1f);
  auto signed_scale = [&] { return f32_to_f16(byte(rng) & 1 ? block_scale(rng) : -block_scale(rng)); };
  std::byte* p = w.bytes.data();
  switch (t) {
    case DType::kF32:
      for (int64_t i = 0; i < n * k; ++i) {
        const float v = normal(rng);
        std::memcpy(p + 4 * i, &v, 4);
      }
      break;
    case DType::kF16:
    case DType::kBF16:
      for (int64_t i = 0; i < n * k; ++i)
        put_u16(p + 2 * i, t == DType::kF16 ? f32_to_f16(normal(rng)) : f32_to_bf16(normal(rng)));
      break;
    case DType::kF8E4M3:
      for (int64_t i = 0; i < n * k; ++i) {
        int v = byte(rng);
        while ((v & 0x7F) == 0x7F) v = byte(rng);  // no NaN codes: the reference result would be NaN
        p[i] = std::byte(v);
      }
      for (int64_t j = 0; j < n; ++j) w.scale.push_back(block_scale(rng));
      break;
    case DType::kQ8_0:
    case DType::kQ4_0:
    case DType::kNF4: {
      const int64_t bytes_per_block = dtype_info(t).block_bytes;
      for (size_t b = 0; b < w.bytes.size() / bytes_per_block; ++b) {
        std::byte* blk = p + b * bytes_per_block;
        put_u16(blk, signed_scale());
        for (int64_t i = 2; i < bytes_per_block; ++i) blk[i] = std::byte(byte(rng));
      }
      break;
    }
    default: ADD_FAILURE() << "no random weight of type " << dtype_name(t);
  }
  return w;
}

struct Expected {
  std::vector<float> y;          // [m, n] ops::ref::linear
  std::vector<double> tol_f32;   // [m, n] bound for f32 arithmetic
  std::vector<double> tol_int8;  // [m, n] bound with int8 activations (k a multiple of 32)
};

Expected expect(const Weight& w, const std::vector<float>& x, const std::vector<float>& bias, int64_t m) {
  const int64_t n = w.view().shape[0], k = w.view().shape[1];
  Expected e;
  e.y.assign(m * n, 0.0f);
  LinearArgs a;
  a.x = const_view_of(x, Shape{m, k});
  a.weight = w.view();
  a.scale = w.scale_view();
  if (!bias.empty()) a.bias = const_view_of(bias, Shape{n});
  a.y = view_of(e.y, Shape{m, n});
  ops::ref::linear(a);
  e.tol_f32.resize(m * n);
  e.tol_int8.resize(m * n);
  std::vector<float> row(k);
  for (int64_t j = 0; j < n; ++j) {
    ops::dequantize_row(w.view(), j, row, w.scale.empty() ? nullptr : w.scale.data());
    for (int64_t i = 0; i < m; ++i) {
      const float* xi = x.data() + i * k;
      double abs_sum = 0, quant = 0;
      for (int64_t p = 0; p < k; ++p) abs_sum += std::abs(static_cast<double>(xi[p]) * row[p]);
      for (int64_t b = 0; k % 32 == 0 && b < k / 32; ++b) {
        double amax = 0, wsum = 0;
        for (int t = 0; t < 32; ++t) amax = std::max(amax, std::abs(static_cast<double>(xi[32 * b + t])));
        for (int t = 0; t < 32; ++t) wsum += std::abs(row[32 * b + t]);
        quant += wsum * amax / 127 / 2;
      }
      const double b_abs = bias.empty() ? 0 : std::abs(bias[j]);
      e.tol_f32[i * n + j] = (k + 2) * kU * (abs_sum + b_abs) + 1e-30;
      e.tol_int8[i * n + j] = quant + (k + 8) * kU * (abs_sum + 2 * quant + b_abs) + 1e-30;
    }
  }
  return e;
}

::testing::AssertionResult within(const std::vector<float>& got, const std::vector<float>& want,
                                  const std::vector<double>& tol) {
  size_t bad = 0, worst = 0;
  double worst_ratio = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::abs(static_cast<double>(got[i]) - want[i]);
    const double ratio = err / tol[i];
    if (!(err <= tol[i])) ++bad;
    if (!(ratio <= worst_ratio)) worst_ratio = ratio, worst = i;  // NaN counts as worst
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << got.size() << " outside the bound; worst at " << worst
                                       << ": got " << got[worst] << ", want " << want[worst] << ", bound "
                                       << tol[worst];
}

// Runs linear with x rows `ldx` apart and y rows `ldy` apart (0: packed); returns y packed and
// checks that the padding between y rows is untouched.
// With `packed`: the weight as be.pack_linear_weight prepared it, passed beside the view — or,
// with `packed_only`, beside a view without data (a model that dropped the natural copy).
std::vector<float> run(Backend& be, const Weight& w, const std::vector<float>& x, const std::vector<float>& bias,
                       int64_t m, int64_t ldx = 0, int64_t ldy = 0, const PackedWeight* packed = nullptr,
                       bool packed_only = false) {
  const int64_t n = w.view().shape[0], k = w.view().shape[1];
  ldx = ldx ? ldx : k;
  ldy = ldy ? ldy : n;
  std::vector<float> xs(std::max<int64_t>(1, m * ldx), -7.0f);
  for (int64_t i = 0; i < m; ++i) std::copy(x.begin() + i * k, x.begin() + (i + 1) * k, xs.begin() + i * ldx);
  constexpr float kSentinel = 12345.0f;
  std::vector<float> ys(std::max<int64_t>(1, m * ldy), kSentinel);
  LinearArgs a;  // views with row strides ldx, ldy (built by hand: contiguous() wants packed rows)
  a.x.data = reinterpret_cast<const std::byte*>(xs.data());
  a.x.shape = Shape{m, k};
  a.x.strides = Shape{ldx, 1};
  a.weight = w.view();
  a.scale = w.scale_view();
  if (!bias.empty()) a.bias = const_view_of(bias, Shape{n});
  a.y.data = reinterpret_cast<std::byte*>(ys.data());
  a.y.shape = Shape{m, n};
  a.y.strides = Shape{ldy, 1};
  a.packed = packed;
  if (packed_only) a.weight.data = nullptr;
  be.linear(a);
  be.synchronize();
  std::vector<float> y(m * n);
  for (int64_t i = 0; i < m; ++i) {
    std::copy(ys.begin() + i * ldy, ys.begin() + i * ldy + n, y.begin() + i * n);
    for (int64_t j = n; j < ldy; ++j) EXPECT_EQ(ys[i * ldy + j], kSentinel) << "y padding written at row " << i;
  }
  return y;
}

std::unique_ptr<Backend> other_thread_count(const BackendVariant& v) {
  BackendOptions o = v.options;
  o.threads = o.threads == 1 ? 3 : 1;
  return create_backend(v.backend, o);
}

constexpr DType kTypes[] = {DType::kF32,  DType::kF16,  DType::kBF16, DType::kF8E4M3,
                            DType::kQ8_0, DType::kQ4_0, DType::kNF4};
constexpr KernelPreference kSides[] = {KernelPreference::kAuto, KernelPreference::kVendor, KernelPreference::kCustom};

// Four reduction lengths per type: small, a tail past a whole number of SIMD steps (f32 lanes;
// 4 and 16 blocks for the int8 kernels), and one above the f32 kernels' k-block of 2048.
std::array<int64_t, 4> lengths(DType t) {
  switch (t) {
    case DType::kQ8_0:
    case DType::kQ4_0: return {32, 32 * 14, 32 * 27, 32 * 69};  // tails of 1, 14, 11 and 5 blocks
    case DType::kNF4: return {64, 192, 64 * 17, 64 * 33};
    default: return {1, 37, 100, 2100};
  }
}

struct Shape3 {
  int64_t m, n;
  int k_index;
};
// GEMV (m ≤ 8, in groups of 4) and GEMM rows (tiles of 4 and 6 with remainders); n across
// partial panels of 3, 4 and 32 weight rows.
constexpr Shape3 kShapes[] = {{1, 33, 0}, {1, 70, 2}, {2, 7, 1},  {3, 1, 3},   {4, 33, 2}, {5, 70, 1},
                              {8, 37, 0}, {9, 33, 2}, {13, 7, 3}, {20, 70, 1}, {1, 5, 3}};

TEST_P(BackendTest, LinearMatchesReferenceForEveryTypeAndSide) {
  auto other = other_thread_count(GetParam());
  uint64_t seed = 1;
  for (DType t : kTypes) {
    for (const Shape3& s : kShapes) {
      const int64_t k = lengths(t)[s.k_index];
      const Weight w = random_weight(t, s.n, k, ++seed);
      const auto x = random_normal(s.m * k, ++seed);
      const auto bias = seed % 2 ? random_normal(s.n, ++seed) : std::vector<float>{};
      const Expected e = expect(w, x, bias, s.m);
      for (KernelPreference side : kSides) {
        backend().set_kernel_preference(side);
        other->set_kernel_preference(side);
        const auto info = backend().supports_op({OpKind::kLinear, t, s.m, s.n, k});
        ASSERT_TRUE(info.has_value()) << dtype_name(t);
        SCOPED_TRACE(cat(dtype_name(t), " m=", s.m, " n=", s.n, " k=", k, " bias=", !bias.empty(), " side ",
                         kernel_preference_name(side), ": ", info->name));
        if (side == KernelPreference::kVendor) {
          EXPECT_TRUE(info->vendor);
        }
        if (side == KernelPreference::kCustom) {
          EXPECT_FALSE(info->vendor);
        }
        const auto y = run(backend(), w, x, bias, s.m);
        const bool int8 = info->name.find("int8") != std::string::npos;
        EXPECT_TRUE(within(y, e.y, int8 ? e.tol_int8 : e.tol_f32));
        // Same ISA and side, 1 vs 3 threads: the same bits.
        const auto y_other = run(*other, w, x, bias, s.m);
        EXPECT_EQ(std::memcmp(y.data(), y_other.data(), y.size() * 4), 0) << "results differ between 1 and 3 threads";
      }
    }
  }
}

// Rows of x, y and the weight with gaps (row strides above k, n and the row's blocks): the kernels
// honour all three. The weight is the first k columns of a wider one.
TEST_P(BackendTest, LinearHonoursRowStrides) {
  uint64_t seed = 100;
  for (DType t : {DType::kF32, DType::kQ4_0, DType::kQ8_0, DType::kNF4, DType::kBF16}) {
    for (int64_t m : {1, 3, 11}) {
      const int64_t n = 19, k = lengths(t)[1];
      Weight w = random_weight(t, n, k + 64, ++seed);
      w.view_shape = Shape{n, k};
      const auto x = random_normal(m * k, ++seed);
      const auto bias = random_normal(n, ++seed);
      const Expected e = expect(w, x, bias, m);
      for (KernelPreference side : kSides) {
        backend().set_kernel_preference(side);
        const auto info = backend().supports_op({OpKind::kLinear, t, m, n, k});
        SCOPED_TRACE(cat(dtype_name(t), " m=", m, " ", info->name));
        const auto y = run(backend(), w, x, bias, m, k + 5, n + 3);
        EXPECT_TRUE(within(y, e.y, info->name.find("int8") != std::string::npos ? e.tol_int8 : e.tol_f32));
      }
    }
  }
}

// Activations that int8 represents exactly (every block: integers × c with one ±127·c): the int8
// kernels then differ from the reference by f32 rounding only, which the f32 bound covers. This
// pins the integer part (the unsigned offsets and their corrections) much tighter than the
// quantization bound.
TEST_P(BackendTest, LinearInt8IsExactOnRepresentableActivations) {
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int> q(-127, 127);
  for (DType t : {DType::kQ8_0, DType::kQ4_0}) {
    for (int64_t m : {1, 2, 12}) {
      const int64_t n = 45, k = 32 * 21;
      const Weight w = random_weight(t, n, k, 11 + m);
      std::vector<float> x(m * k);
      for (int64_t b = 0; b < m * k / 32; ++b) {
        const float c = std::ldexp(1.0f, static_cast<int>(b % 7) - 9);  // a power of two: q·c exact
        for (int i = 0; i < 32; ++i) x[32 * b + i] = static_cast<float>(q(rng)) * c;
        x[32 * b + b % 32] = (b % 2 ? 127.0f : -127.0f) * c;
      }
      const Expected e = expect(w, x, {}, m);
      backend().set_kernel_preference(KernelPreference::kCustom);
      SCOPED_TRACE(cat(dtype_name(t), " m=", m));
      EXPECT_TRUE(within(run(backend(), w, x, {}, m), e.y, e.tol_f32));
    }
  }
}

// A NaN in x makes its row of y NaN on every path (int8 kernels: the block's scale becomes NaN);
// other rows are unaffected.
TEST_P(BackendTest, LinearPropagatesNaNFromActivations) {
  for (DType t : {DType::kF32, DType::kQ8_0, DType::kQ4_0, DType::kF16}) {
    for (int64_t m : {1, 10}) {
      for (int64_t k : {64, 576}) {  // 576: the NaN inside a run of 16 blocks quantized together
        const int64_t n = 9;
        const Weight w = random_weight(t, n, k, 3);
        auto x = random_normal(m * k, 4);
        x[5] = std::numeric_limits<float>::quiet_NaN();  // row 0
        for (KernelPreference side : kSides) {
          backend().set_kernel_preference(side);
          const auto y = run(backend(), w, x, {}, m);
          for (int64_t j = 0; j < n; ++j) EXPECT_TRUE(std::isnan(y[j])) << dtype_name(t) << " m=" << m << " j=" << j;
          for (int64_t i = 1; i < m; ++i)
            for (int64_t j = 0; j < n; ++j) EXPECT_TRUE(std::isfinite(y[i * n + j])) << dtype_name(t);
        }
      }
    }
  }
}

TEST_P(BackendTest, LinearWithNoRowsDoesNothing) {
  const Weight w = random_weight(DType::kQ4_0, 8, 64, 5);
  for (KernelPreference side : kSides) {
    backend().set_kernel_preference(side);
    EXPECT_TRUE(run(backend(), w, {}, {}, 0).empty());
  }
}

TEST_P(BackendTest, LinearNamesItsKernels) {
  for (DType t : kTypes) {
    for (int64_t m : {1, 64}) {
      backend().set_kernel_preference(KernelPreference::kAuto);
      const auto info = backend().supports_op({OpKind::kLinear, t, m, 4096, 4096});
      ASSERT_TRUE(info.has_value());
      if (m == 1) {
        EXPECT_NE(info->name.find("gemv"), std::string::npos) << info->name;
      }
      backend().set_kernel_preference(KernelPreference::kVendor);
      EXPECT_NE(backend().supports_op({OpKind::kLinear, t, m, 4096, 4096})->name.find("openblas"), std::string::npos);
    }
  }
  EXPECT_FALSE(backend().supports_op({OpKind::kLinear, DType::kI8, 1, 4, 4}).has_value());
  for (DType t : {DType::kQ8_0, DType::kQ4_0}) {
    backend().set_kernel_preference(KernelPreference::kAuto);
    EXPECT_NE(backend().supports_op({OpKind::kLinear, t, 1, 4096, 4096, true})->name.find("gemv int8"),
              std::string::npos);
    EXPECT_NE(backend().supports_op({OpKind::kLinear, t, 64, 4096, 4096, true})->name.find("(packed)"),
              std::string::npos);
  }
}

// ---- packed weights (Backend::pack_linear_weight) -----------------------------------------------

// The packed kernels against the reference: n not a multiple of the 16-row groups, k tails of
// 1, 14, 11 and 5 blocks (none a multiple of 512), tiles of every row count; at 1 and 3 threads
// (the variants and `other`), every ISA the machine has (the variants). The vendor side ignores
// the packed form and runs on the view.
TEST_P(BackendTest, LinearPackedMatchesReference) {
  auto other = other_thread_count(GetParam());
  uint64_t seed = 500;
  struct Case {
    int64_t m, n;
    int k_index;
  };
  // m = 1, n = 90: a 4-group GEMV tile and a partial one; m = 69: AMX blocks and a vector tail.
  constexpr Case kCases[] = {{1, 1, 0},  {1, 33, 3}, {1, 90, 2},  {2, 7, 1},   {3, 70, 2}, {5, 17, 0},
                             {8, 45, 3}, {9, 31, 1}, {13, 16, 2}, {40, 50, 1}, {69, 37, 3}};
  for (DType t : {DType::kQ8_0, DType::kQ4_0}) {
    for (const Case& c : kCases) {
      const int64_t k = lengths(t)[c.k_index];
      const Weight w = random_weight(t, c.n, k, ++seed);
      const auto x = random_normal(c.m * k, ++seed);
      const auto bias = seed % 2 ? random_normal(c.n, ++seed) : std::vector<float>{};
      const Expected e = expect(w, x, bias, c.m);
      const auto packed = backend().pack_linear_weight(w.view());
      ASSERT_NE(packed, nullptr) << dtype_name(t);
      EXPECT_GE(packed->bytes(), w.bytes.size());
      const auto packed_other = other->pack_linear_weight(w.view());
      for (KernelPreference side : kSides) {
        backend().set_kernel_preference(side);
        other->set_kernel_preference(side);
        const auto info = backend().supports_op({OpKind::kLinear, t, c.m, c.n, k, true});
        ASSERT_TRUE(info.has_value());
        SCOPED_TRACE(cat(dtype_name(t), " m=", c.m, " n=", c.n, " k=", k, " bias=", !bias.empty(), " side ",
                         kernel_preference_name(side), ": ", info->name));
        EXPECT_EQ(info->name.find("(packed)") != std::string::npos, side != KernelPreference::kVendor);
        const auto y = run(backend(), w, x, bias, c.m, 0, 0, packed.get());
        const bool int8 = info->name.find("int8") != std::string::npos;
        EXPECT_TRUE(within(y, e.y, int8 ? e.tol_int8 : e.tol_f32));
        const auto y_other = run(*other, w, x, bias, c.m, 0, 0, packed_other.get());
        EXPECT_EQ(std::memcmp(y.data(), y_other.data(), y.size() * 4), 0) << "results differ between 1 and 3 threads";
        // Without the natural data every side reads the packed form (the vendor side unpacks its
        // rows): the same bits.
        const auto y_packed_only = run(backend(), w, x, bias, c.m, 0, 0, packed.get(), true);
        EXPECT_EQ(std::memcmp(y.data(), y_packed_only.data(), y.size() * 4), 0) << "packed-only weight differs";
      }
    }
  }
}

// Packing reads the view's row stride: the first k columns of a wider weight.
TEST_P(BackendTest, LinearPackedHonoursWeightRowStride) {
  backend().set_kernel_preference(KernelPreference::kAuto);
  uint64_t seed = 600;
  for (DType t : {DType::kQ8_0, DType::kQ4_0}) {
    const int64_t m = 3, n = 21, k = 32 * 14;
    Weight w = random_weight(t, n, k + 64, ++seed);
    w.view_shape = Shape{n, k};
    const auto x = random_normal(m * k, ++seed);
    const auto bias = random_normal(n, ++seed);
    const Expected e = expect(w, x, bias, m);
    const auto packed = backend().pack_linear_weight(w.view());
    SCOPED_TRACE(dtype_name(t));
    EXPECT_TRUE(within(run(backend(), w, x, bias, m, k + 5, n + 3, packed.get()), e.y, e.tol_int8));
  }
}

// Batch invariance: row i of an m-row call has the bits of the same activation row alone (m = 1),
// whatever the other rows of the call and their number. Each m takes a different mix of rows, so
// a row meets different neighbours and lands in different tile positions.
TEST_P(BackendTest, LinearPackedRowsDoNotDependOnTheBatch) {
  backend().set_kernel_preference(KernelPreference::kAuto);
  uint64_t seed = 700;
  for (DType t : {DType::kQ8_0, DType::kQ4_0}) {
    const int64_t rows = 64, n = 45, k = 32 * 27;
    const Weight w = random_weight(t, n, k, ++seed);
    const auto pool = random_normal(rows * k, ++seed);
    const auto bias = random_normal(n, ++seed);
    const auto packed = backend().pack_linear_weight(w.view());
    std::vector<std::vector<float>> alone(rows);  // [rows][n]: each row with m = 1
    for (int64_t r = 0; r < rows; ++r)
      alone[r] = run(backend(), w, {pool.begin() + r * k, pool.begin() + (r + 1) * k}, bias, 1, 0, 0, packed.get());
    for (int64_t m : {1, 2, 5, 8, 9, 33, 64}) {
      std::vector<int64_t> pick(m);
      std::vector<float> x(m * k);
      for (int64_t i = 0; i < m; ++i) {
        pick[i] = (i * 37 + m * 11) % rows;
        std::copy(pool.begin() + pick[i] * k, pool.begin() + (pick[i] + 1) * k, x.begin() + i * k);
      }
      const auto y = run(backend(), w, x, bias, m, 0, 0, packed.get());
      for (int64_t i = 0; i < m; ++i)
        EXPECT_EQ(std::memcmp(y.data() + i * n, alone[pick[i]].data(), n * 4), 0)
            << dtype_name(t) << " m=" << m << ": row " << i << " (pool row " << pick[i] << ") differs from m=1";
    }
  }
}

// A NaN in x makes its row NaN and leaves the others finite, on the packed kernels too.
TEST_P(BackendTest, LinearPackedPropagatesNaNFromActivations) {
  backend().set_kernel_preference(KernelPreference::kAuto);
  for (DType t : {DType::kQ8_0, DType::kQ4_0}) {
    const int64_t m = 10, n = 9, k = 64;
    const Weight w = random_weight(t, n, k, 3);
    auto x = random_normal(m * k, 4);
    x[5] = std::numeric_limits<float>::quiet_NaN();  // row 0
    const auto packed = backend().pack_linear_weight(w.view());
    const auto y = run(backend(), w, x, {}, m, 0, 0, packed.get());
    for (int64_t j = 0; j < n; ++j) EXPECT_TRUE(std::isnan(y[j])) << dtype_name(t) << " j=" << j;
    for (int64_t i = 1; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) EXPECT_TRUE(std::isfinite(y[i * n + j])) << dtype_name(t);
  }
}

// Types without a packed form pack to null; a packed weight must match the view it is passed with.
TEST_P(BackendTest, LinearPackedChecksItsWeight) {
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kNF4})
    EXPECT_EQ(backend().pack_linear_weight(random_weight(t, 4, 64, 1).view()), nullptr) << dtype_name(t);
  const Weight a = random_weight(DType::kQ4_0, 6, 64, 2), b = random_weight(DType::kQ4_0, 6, 96, 3);
  const auto packed_b = backend().pack_linear_weight(b.view());
  const auto x = random_normal(64, 4);
  try {
    run(backend(), a, x, {}, 1, 0, 0, packed_b.get());
    ADD_FAILURE() << "a [6, 96] packed weight was accepted for a [6, 64] view";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(e.message().find("packed weight is q4_0 [6, 96]"), std::string::npos) << e.what();
  }
  Weight bad = a;
  bad.view_shape = Shape{6, 48};  // not whole blocks
  EXPECT_THROW(backend().pack_linear_weight(bad.view()), Error);
}

// The packed kernels of every ISA follow one recipe per element (linear_packed.cc), and the
// activations quantize to the same bytes on every ISA: AMX tiles, AVX-512, AVX2 and scalar agree
// bit for bit (m = 69: four 16-row blocks on the tile unit and 5 rows on the vector tiles).
TEST(LinearPacked, EveryIsaGivesTheSameBits) {
  std::vector<std::unique_ptr<Backend>> backends;
  for (const char* isa : {"amx", "avx512", "avx2", "scalar"}) {
    BackendOptions o;
    o.isa = isa;
    o.threads = 2;
    try {
      backends.push_back(create_backend("cpu", o));
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kUnsupported) << e.what();  // this CPU lacks the level
    }
  }
  ASSERT_FALSE(backends.empty());
  for (DType t : {DType::kQ8_0, DType::kQ4_0}) {
    const int64_t m = 69, n = 37, k = 32 * 27;
    const Weight w = random_weight(t, n, k, 800);
    auto x = random_normal(m * k, 801);
    std::fill_n(x.begin() + 3 * k + 32 * 5, 32, 0.0f);  // a zero block: scale 0, codes 0
    std::fill_n(x.begin() + 4 * k, k, 0.0f);            // a zero row
    const auto bias = random_normal(n, 802);
    const auto packed = backends[0]->pack_linear_weight(w.view());
    const auto first = run(*backends[0], w, x, bias, m, 0, 0, packed.get());
    for (size_t b = 1; b < backends.size(); ++b)
      EXPECT_EQ(
          std::memcmp(first.data(), run(*backends[b], w, x, bias, m, 0, 0, packed.get()).data(), first.size() * 4), 0)
          << dtype_name(t) << ": " << backends[b]->description() << " differs from " << backends[0]->description();
  }
}

// ---- bad arguments ---------------------------------------------------------------------------

TEST_P(BackendTest, LinearRejectsBadArguments) {
  const Weight q4 = random_weight(DType::kQ4_0, 6, 64, 9);
  const Weight f8 = random_weight(DType::kF8E4M3, 6, 64, 10);
  std::vector<float> x(2 * 64 + 1, 1.0f), y(2 * 6 + 1), bias(6), other(6);
  std::vector<std::byte> i8(6 * 64);
  auto base = [&] {
    LinearArgs a;
    a.x = ConstTensorView::contiguous(std::as_bytes(std::span(x.data(), 128)), DType::kF32, Shape{2, 64});
    a.weight = q4.view();
    a.y = TensorView::contiguous(std::as_writable_bytes(std::span(y.data(), 12)), DType::kF32, Shape{2, 6});
    return a;
  };
  struct Case {
    const char* what;
    std::function<void(LinearArgs&)> edit;
  };
  const std::vector<Case> cases = {
      {"weight type i8",
       [&](LinearArgs& a) {
         a.weight = ConstTensorView::contiguous(i8, DType::kI8, Shape{6, 64});
       }},
      {"multiple of the block size 32",
       [&](LinearArgs& a) {
         a.weight.shape = Shape{12, 32 + 16};
       }},
      {"x must have 64 columns",
       [&](LinearArgs& a) {
         a.x.shape = Shape{4, 32};
       }},
      {"y must have shape [2, 6]",
       [&](LinearArgs& a) {
         a.y.shape = Shape{3, 6};
       }},
      {"needs a per-row scale", [&](LinearArgs& a) { a.weight = f8.view(); }},
      {"weight has no data (and no packed form)", [&](LinearArgs& a) { a.weight.data = nullptr; }},
      {"scale is only used with f8_e4m3", [&](LinearArgs& a) { a.scale = const_view_of(other, Shape{6}); }},
      {"bias must have shape [6]",
       [&](LinearArgs& a) {
         a.bias = ConstTensorView::contiguous(std::as_bytes(std::span(bias.data(), 5)), DType::kF32, Shape{5});
       }},
      {"x rows must be contiguous",
       [&](LinearArgs& a) {
         a.x.strides = Shape{64, 2};
       }},
      {"y overlaps x",
       [&](LinearArgs& a) {
         a.y.data = reinterpret_cast<std::byte*>(const_cast<float*>(reinterpret_cast<const float*>(a.x.data)));
       }},
      {"not 4-byte aligned", [&](LinearArgs& a) { a.y.data += 2; }},
      {"x must be f32", [&](LinearArgs& a) { a.x.dtype = DType::kF16; }},
  };
  for (const Case& c : cases) {
    LinearArgs a = base();
    c.edit(a);
    try {
      ops::validate(a);
      ADD_FAILURE() << "accepted: " << c.what;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
      EXPECT_EQ(e.component(), "linear");
      EXPECT_NE(e.message().find(c.what), std::string::npos) << e.what();
    }
    EXPECT_THROW(backend().linear(a), Error) << c.what;
  }
  LinearArgs ok = base();
  EXPECT_NO_THROW(backend().linear(ok));
}

}  // namespace
}  // namespace bf::conformance
