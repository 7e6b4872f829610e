// Quantizers (src/ops/quantize.cc): exact bytes of hand-computed blocks, the error bounds of
// docs/quantization.md through ops::dequantize_row, rejection of bad rows, and f32 → fp8 e4m3fn
// against ml_dtypes' results and an exhaustive nearest-even oracle. Python ↔ C++ byte identity is
// tested end to end in tests/e2e/test_quant_identical.py.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "batch_forge/core/error.h"
#include "batch_forge/core/tensor.h"
#include "batch_forge/ops/quant.h"
#include "ops/convert.h"
#include "ops/quantize.h"
#include "ops/reference.h"

namespace bf {
namespace {

using ops::QuantScheme;

constexpr QuantScheme kAllSchemes[] = {QuantScheme::kQ8_0, QuantScheme::kQ4_0, QuantScheme::kNF4,
                                       QuantScheme::kFp8E4M3};

// Quantizes x: [n, k] row by row; returns the bytes and (fp8) the row scales.
struct QuantizedMatrix {
  std::vector<std::byte> bytes;  // [n, row_bytes]
  std::vector<float> scales;     // [n]
};
QuantizedMatrix quantize_matrix(QuantScheme s, const std::vector<float>& x, int64_t n, int64_t k) {
  const int64_t row_bytes = ops::quantized_row_bytes(s, k);
  QuantizedMatrix q{std::vector<std::byte>(n * row_bytes), std::vector<float>(n)};
  for (int64_t r = 0; r < n; ++r)
    q.scales[r] =
        ops::quantize_row(s, std::span(x).subspan(r * k, k), std::span(q.bytes).subspan(r * row_bytes, row_bytes));
  return q;
}

std::vector<float> dequantize_matrix(QuantScheme s, const QuantizedMatrix& q, int64_t n, int64_t k) {
  const auto view = ConstTensorView::contiguous(q.bytes, ops::quant_scheme_info(s).dtype, Shape({n, k}));
  std::vector<float> out(n * k);
  for (int64_t r = 0; r < n; ++r)
    ops::dequantize_row(view, r, std::span(out).subspan(r * k, k),
                        s == QuantScheme::kFp8E4M3 ? q.scales.data() : nullptr);
  return out;
}

// Rows whose blocks have very different magnitudes, with outliers: what real weights look like.
std::vector<float> random_weights(int64_t n, int64_t k, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> log_scale(-6.0f, 3.0f);
  std::vector<float> x(n * k);
  for (int64_t b = 0; b < n * k / 32; ++b) {
    const float scale = std::exp2(log_scale(rng));
    for (int i = 0; i < 32; ++i) x[b * 32 + i] = normal(rng) * scale * (i == 5 ? 8.0f : 1.0f);
  }
  return x;
}

float f16_scale_of_block(const std::vector<std::byte>& bytes, size_t offset) {
  uint16_t h;
  std::memcpy(&h, bytes.data() + offset, 2);
  return f16_to_f32(h);
}

TEST(Quant, SchemeTable) {
  EXPECT_EQ(ops::quant_scheme_from_name("nf4"), QuantScheme::kNF4);
  EXPECT_FALSE(ops::quant_scheme_from_name("q5_0"));
  EXPECT_EQ(ops::quantized_row_bytes(QuantScheme::kQ8_0, 64), 68);
  EXPECT_EQ(ops::quantized_row_bytes(QuantScheme::kQ4_0, 64), 36);
  EXPECT_EQ(ops::quantized_row_bytes(QuantScheme::kNF4, 128), 68);
  EXPECT_EQ(ops::quantized_row_bytes(QuantScheme::kFp8E4M3, 7), 7);
  for (QuantScheme s : kAllSchemes)
    EXPECT_EQ(ops::quant_scheme_info(s).dtype == DType::kF8E4M3, s == QuantScheme::kFp8E4M3);
}

// q8_0, q4_0 and nf4 refuse a k that is not a whole number of blocks; fp8_e4m3 (no blocks) takes
// any k but refuses an output buffer of the wrong size, as all of them do.
TEST(Quant, RejectsPartialBlocksAndWrongOutputSize) {
  const std::vector<float> x(96, 1.0f);
  std::vector<std::byte> out(256);
  for (auto [s, k] : {std::pair{QuantScheme::kQ8_0, 33}, {QuantScheme::kQ4_0, 48}, {QuantScheme::kNF4, 96}}) {
    try {
      ops::quantize_row(s, std::span(x).first(k), out);
      ADD_FAILURE() << "k = " << k << " accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(e.message().find("multiple of its block"), std::string::npos) << e.what();
    }
  }
  for (QuantScheme s : kAllSchemes) {
    const int64_t need = ops::quantized_row_bytes(s, 64);
    EXPECT_THROW(ops::quantize_row(s, std::span(x).first(64), std::span(out).first(need + 1)), Error);
    EXPECT_NO_THROW(ops::quantize_row(s, std::span(x).first(64), std::span(out).first(need)));
  }
}

TEST(Quant, RejectsNonFiniteValuesNamingTheColumn) {
  std::vector<std::byte> out(256);
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    for (QuantScheme s : kAllSchemes) {
      std::vector<float> x(64, 0.5f);
      x[37] = bad;
      try {
        ops::quantize_row(s, x, std::span(out).first(ops::quantized_row_bytes(s, 64)));
        ADD_FAILURE() << bad << " accepted by " << ops::quant_scheme_info(s).name;
      } catch (const Error& e) {
        EXPECT_NE(e.message().find("column 37"), std::string::npos) << e.what();
      }
    }
  }
}

TEST(Quant, RejectsScalesThatOverflowF16) {
  std::vector<std::byte> out(256);
  std::vector<float> x(64, 1.0f);
  x[40] = 1e7f;  // q8_0 needs max |x| < 8.3e6, q4_0 < 524160, nf4 < 65520
  for (QuantScheme s : {QuantScheme::kQ8_0, QuantScheme::kQ4_0, QuantScheme::kNF4}) {
    try {
      ops::quantize_row(s, x, std::span(out).first(ops::quantized_row_bytes(s, 64)));
      ADD_FAILURE() << ops::quant_scheme_info(s).name << " accepted 1e7";
    } catch (const Error& e) {
      EXPECT_NE(e.message().find("overflows f16"), std::string::npos) << e.what();
      EXPECT_NE(e.message().find(s == QuantScheme::kNF4 ? "column 0" : "column 32"), std::string::npos) << e.what();
    }
  }
  x[40] = 60000.0f;  // fits nf4 and q4_0 and q8_0
  for (QuantScheme s : kAllSchemes)
    EXPECT_NO_THROW(ops::quantize_row(s, x, std::span(out).first(ops::quantized_row_bytes(s, 64))));
}

// Blocks whose scale is exactly 1, so every code is rint of the value itself (ties to even).
TEST(Quant, Q8_0ExactBlock) {
  std::vector<float> x(32, 0.0f);
  const float head[] = {-127.0f, 2.5f, 3.5f, -2.5f, 0.49f, 126.6f, -0.5f};
  std::copy(std::begin(head), std::end(head), x.begin());
  BlockQ8_0 b;
  ops::quantize_row(QuantScheme::kQ8_0, x, std::as_writable_bytes(std::span(&b, 1)));
  EXPECT_EQ(b.d, 0x3C00);  // f16 1.0
  const int expect[] = {-127, 2, 4, -2, 0, 127, 0};
  for (int i = 0; i < 7; ++i) EXPECT_EQ(b.qs[i], expect[i]) << i;
  for (int i = 7; i < 32; ++i) EXPECT_EQ(b.qs[i], 0);
}

TEST(Quant, Q4_0ExactBlockAndNibbleOrder) {
  std::vector<float> x(32, 0.0f);
  x[0] = -8.0f;  // m: d = −8 / −8 = 1
  x[1] = 7.5f;   // rint 8 → 16, clamped to 15
  x[2] = 6.5f;   // 6 + 8 = 14
  x[3] = -0.5f;  // −0 + 8 = 8
  x[16] = 8.0f;  // as large as m but later: m stays −8; 16 → 15
  x[17] = -3.0f;
  x[31] = 2.0f;
  BlockQ4_0 b;
  ops::quantize_row(QuantScheme::kQ4_0, x, std::as_writable_bytes(std::span(&b, 1)));
  EXPECT_EQ(b.d, 0x3C00);
  EXPECT_EQ(b.qs[0], 0 | (15 << 4));  // q[0] low, q[16] high
  EXPECT_EQ(b.qs[1], 15 | (5 << 4));
  EXPECT_EQ(b.qs[2], 14 | (8 << 4));
  EXPECT_EQ(b.qs[3], 8 | (8 << 4));
  EXPECT_EQ(b.qs[15], 8 | (10 << 4));
}

TEST(Quant, Nf4ExactBlockTiesToTheLowerIndex) {
  std::vector<float> x(64, 0.0f);
  x[0] = 1.0f;                    // absmax = 1 → s = 1
  x[1] = -1.0f;                   // code 0
  x[2] = kNf4Values[8] / 2.0f;    // exactly between levels 7 and 8: the lower index
  x[3] = kNf4Values[12] + 1e-3f;  // nearest 12
  x[32] = kNf4Values[3];          // exact level, high nibble of byte 0
  BlockNF4 b;
  ops::quantize_row(QuantScheme::kNF4, x, std::as_writable_bytes(std::span(&b, 1)));
  EXPECT_EQ(b.absmax, 0x3C00);
  EXPECT_EQ(b.qs[0], 15 | (3 << 4));
  EXPECT_EQ(b.qs[1], 0 | (7 << 4));
  EXPECT_EQ(b.qs[2], 7 | (7 << 4));
  EXPECT_EQ(b.qs[3], 12 | (7 << 4));
}

TEST(Quant, ZeroBlocks) {
  const std::vector<float> zeros(64, 0.0f);
  std::vector<std::byte> out(68);
  ops::quantize_row(QuantScheme::kQ8_0, zeros, out);
  for (std::byte v : out) EXPECT_EQ(v, std::byte{0});
  ops::quantize_row(QuantScheme::kQ4_0, zeros, std::span(out).first(36));
  EXPECT_EQ(out[0], std::byte{0x00});
  EXPECT_EQ(out[1], std::byte{0x80});  // d = +0 / −8 = −0: f16 0x8000
  EXPECT_EQ(out[2], std::byte{0x88});  // q = 8: value (8 − 8) · d = 0
  ops::quantize_row(QuantScheme::kNF4, zeros, std::span(out).first(34));
  EXPECT_EQ(out[0], std::byte{0});
  EXPECT_EQ(out[2], std::byte{0x77});  // code 7 is the exact zero
  EXPECT_EQ(ops::quantize_row(QuantScheme::kFp8E4M3, zeros, std::span(out).first(64)), 0.0f);
}

// The bounds of docs/quantization.md, through the real dequantizer.
TEST(Quant, RoundTripErrorBounds) {
  const int64_t n = 64, k = 256;
  const std::vector<float> x = random_weights(n, k, 7);
  for (QuantScheme s : kAllSchemes) {
    SCOPED_TRACE(ops::quant_scheme_info(s).name);
    const QuantizedMatrix q = quantize_matrix(s, x, n, k);
    const std::vector<float> y = dequantize_matrix(s, q, n, k);
    const auto& info = ops::quant_scheme_info(s);
    for (int64_t r = 0; r < n; ++r) {
      for (int64_t i = 0; i < k; ++i) {
        const int64_t at = r * k + i;
        const float err = std::fabs(x[at] - y[at]);
        const size_t block_at = (r * k + i) / info.block * info.block_bytes;
        if (s == QuantScheme::kQ8_0) {
          ASSERT_LE(err, 0.5001f * f16_scale_of_block(q.bytes, block_at)) << r << "," << i;
        } else if (s == QuantScheme::kQ4_0) {
          // Values beyond 7.5·|d| on the side opposite the block's largest value clamp to 7·|d|.
          const float d = std::fabs(f16_scale_of_block(q.bytes, block_at));
          ASSERT_LE(err, (std::fabs(x[at]) > 7.5f * d ? 1.001f : 0.5001f) * d) << r << "," << i;
        } else if (s == QuantScheme::kNF4) {
          // Half the widest gap between neighbouring levels (−1 … −0.696).
          ASSERT_LE(err, 0.1521f * f16_scale_of_block(q.bytes, block_at)) << r << "," << i;
        } else {
          // e4m3: 3 mantissa bits (half an ulp is 2^-4 relative), subnormal step 2^-9 of the scale.
          ASSERT_LE(err, std::max(std::fabs(x[at]) * 0.0625f, q.scales[r] * 0.0009766f) * 1.0001f) << r << "," << i;
        }
      }
    }
  }
}

// ---- f32 → fp8 e4m3fn ----

// Results of ml_dtypes 0.6: np.array([v], np.float32).astype(ml_dtypes.float8_e4m3fn).
TEST(Fp8, MatchesMlDtypesOnEdgeValues) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const std::pair<float, uint8_t> cases[] = {
      {448.0f, 0x7E},    {449.0f, 0x7E},    {463.9f, 0x7E},   {464.0f, 0x7E},        {464.01f, 0x7F},
      {480.0f, 0x7F},    {1e9f, 0x7F},      {inf, 0x7F},      {-inf, 0xFF},          {nan, 0x7F},
      {-nan, 0xFF},      {-0.0f, 0x80},     {0x1p-10f, 0x00}, {0x1.0007p-10f, 0x01}, {-0x1p-10f, 0x80},
      {0x1.8p-9f, 0x02}, {0x1.4p-8f, 0x02}, {1e-45f, 0x00},   {-1e-45f, 0x80},       {3.4e38f, 0x7F},
      {1.0f, 0x38},      {-2.25f, 0xC1},    {0x1p-6f, 0x08},  {0x1.ep-7f, 0x08},
  };
  for (auto [v, want] : cases) EXPECT_EQ(ops::f32_to_f8e4m3(v), want) << v;
}

// Nearest e4m3fn value by exhaustive search (ties to the even code); NaN past 464, as ml_dtypes.
uint8_t fp8_oracle(float x) {
  if (std::isnan(x) || std::fabs(x) > 464.0f) return std::signbit(x) ? 0xFF : 0x7F;
  const uint8_t sign = std::signbit(x) ? 0x80 : 0x00;
  const double a = std::fabs(static_cast<double>(x));
  uint8_t best = 0;
  double best_dist = a;
  for (uint8_t c = 1; c <= 0x7E; ++c) {
    const double dist = std::fabs(a - f8e4m3_to_f32(c));
    if (dist < best_dist || (dist == best_dist && (c & 1) == 0)) best = c, best_dist = dist;
  }
  return sign | best;
}

TEST(Fp8, NearestEvenOnEveryF16AndRandomF32) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float x = f16_to_f32(static_cast<uint16_t>(h));
    ASSERT_EQ(ops::f32_to_f8e4m3(x), fp8_oracle(x)) << std::hexfloat << x;
  }
  std::mt19937 rng(3);
  for (int i = 0; i < 200000; ++i) {
    // Random bits, with the exponent concentrated where e4m3 has values (and a few anywhere).
    uint32_t bits = rng();
    if (i % 8) bits = (bits & 0x807FFFFFu) | ((110u + rng() % 30u) << 23);
    const float x = bits_to_f32(bits);
    ASSERT_EQ(ops::f32_to_f8e4m3(x), fp8_oracle(x)) << std::hexfloat << x;
  }
  for (int c = 0; c < 256; ++c) {
    if ((c & 0x7F) == 0x7F) continue;  // NaN codes
    EXPECT_EQ(ops::f32_to_f8e4m3(f8e4m3_to_f32(static_cast<uint8_t>(c))), c);
  }
}

}  // namespace
}  // namespace bf
