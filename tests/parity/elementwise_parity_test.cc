// Row-wise and element-wise ops against JAX / Equinox: for each fixture of
// python/batch_forge/fixture_ops/{norms,activations,rope,embedding}.py, the scalar reference
// (ops::ref) and the CPU backend at every ISA level this machine has run on the fixture's inputs
// and must match JAX's output at the fixture's tolerance.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>

#include "backends/cpu/isa.h"
#include "batch_forge/backends/backend.h"
#include "ops/reference.h"
#include "parity.h"
#include "support/paths.h"

namespace bf::parity {
namespace {

// all_close, with non-finite values compared exactly first (NaN where JAX has NaN, the same
// infinity where it has one): support/all_close.h's |got − want| ≤ tol is NaN for those.
::testing::AssertionResult close_or_same_special(std::vector<float> got, std::vector<float> want, Tolerance tol) {
  if (got.size() != want.size()) return all_close(got, want, tol);
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isfinite(want[i]) && std::isfinite(got[i])) continue;
    const bool same = std::isnan(want[i]) ? std::isnan(got[i]) : got[i] == want[i];
    if (!same) return ::testing::AssertionFailure() << "at " << i << ": got " << got[i] << ", want " << want[i];
    got[i] = want[i] = 0;
  }
  return all_close(got, want, tol);
}

// A fixture tensor as raw bytes, whatever its dtype (Fixture hands out f32 only).
struct RawTensor {
  DType dtype;
  std::vector<int64_t> dims;
  std::vector<std::byte> bytes;  // a copy: aligned for any element type
};

RawTensor raw_input(std::string_view fixture, std::string_view name) {
  const SafetensorsFile file = SafetensorsFile::open(cat(testing::binary_dir(), "/fixtures/", fixture, ".safetensors"));
  const TensorInfo* t = file.find(cat("input.", name));
  if (!t) throw Error(ErrorCode::kNotFound, "parity", cat(fixture, ": no tensor 'input.", name, "'"));
  const auto data = file.data(*t);
  return {t->dtype, t->dims, std::vector<std::byte>(data.begin(), data.end())};
}

std::vector<int32_t> int32_input(std::string_view fixture, std::string_view name) {
  const RawTensor raw = raw_input(fixture, name);
  EXPECT_EQ(raw.dtype, DType::kI32) << fixture << ": input." << name;
  std::vector<int32_t> out(raw.bytes.size() / 4);
  std::memcpy(out.data(), raw.bytes.data(), raw.bytes.size());
  return out;
}

ConstTensorView const_view(const std::vector<float>& v, const Shape& shape) {
  return ConstTensorView::contiguous(std::as_bytes(std::span(v)), DType::kF32, shape);
}
TensorView view(std::vector<float>& v, const Shape& shape) {
  return TensorView::contiguous(std::as_writable_bytes(std::span(v)), DType::kF32, shape);
}
Shape shape_of(const std::vector<int64_t>& dims) { return Shape(std::span<const int64_t>(dims)); }

// run(backend, out): the op on the fixture's inputs into `out` (sized like the output), through
// ops::ref when backend is null. Checked for the reference, the default CPU backend and the CPU
// backend at each ISA level.
void expect_matches_jax(const Fixture& f, std::string_view output,
                        const std::function<void(Backend*, std::vector<float>&)>& run) {
  const std::vector<float> want = f.output(output);
  std::vector<float> got(want.size());
  run(nullptr, got);
  EXPECT_TRUE(close_or_same_special(got, want, f.tolerance())) << f.op() << ": ops::ref";
  std::vector<std::pair<std::string, BackendOptions>> variants = {{"cpu (default)", {}}};
  for (cpu::Isa isa : {cpu::Isa::kAvx512, cpu::Isa::kAvx2, cpu::Isa::kScalar}) {
    if (!cpu::isa_supported(isa)) continue;
    BackendOptions options;
    options.isa = std::string(cpu::isa_name(isa));
    variants.emplace_back(cat("cpu ", cpu::isa_name(isa)), options);
  }
  for (const auto& [label, options] : variants) {
    const auto backend = create_backend("cpu", options);
    std::fill(got.begin(), got.end(), -12345.0f);
    run(backend.get(), got);
    EXPECT_TRUE(close_or_same_special(got, want, f.tolerance())) << f.op() << ": " << label;
  }
}

void rms_norm_case(std::string_view name, bool has_weight, bool has_bias) {
  const Fixture f = Fixture::load(name);
  std::vector<int64_t> dims;
  const auto x = f.input("x", &dims);
  ASSERT_EQ(dims.size(), 2u);
  const std::vector<float> weight = has_weight ? f.input("weight") : std::vector<float>{};
  const std::vector<float> bias = has_bias ? f.input("bias") : std::vector<float>{};
  RmsNormArgs a;
  a.x = const_view(x, shape_of(dims));
  if (has_weight) a.weight = const_view(weight, Shape{dims[1]});
  if (has_bias) a.bias = const_view(bias, Shape{dims[1]});
  a.eps = f.params().at("eps").get<float>();
  expect_matches_jax(f, "y", [&](Backend* b, std::vector<float>& out) {
    a.y = view(out, shape_of(dims));
    b ? b->rms_norm(a) : ops::ref::rms_norm(a);
  });
}

void layer_norm_case(std::string_view name, bool has_weight, bool has_bias) {
  const Fixture f = Fixture::load(name);
  std::vector<int64_t> dims;
  const auto x = f.input("x", &dims);
  ASSERT_EQ(dims.size(), 2u);
  const std::vector<float> weight = has_weight ? f.input("weight") : std::vector<float>{};
  const std::vector<float> bias = has_bias ? f.input("bias") : std::vector<float>{};
  LayerNormArgs a;
  a.x = const_view(x, shape_of(dims));
  if (has_weight) a.weight = const_view(weight, Shape{dims[1]});
  if (has_bias) a.bias = const_view(bias, Shape{dims[1]});
  a.eps = f.params().at("eps").get<float>();
  expect_matches_jax(f, "y", [&](Backend* b, std::vector<float>& out) {
    a.y = view(out, shape_of(dims));
    b ? b->layer_norm(a) : ops::ref::layer_norm(a);
  });
}

TEST(ElementwiseParity, RmsNormMatchesEquinox) { rms_norm_case("rms_norm", true, false); }
TEST(ElementwiseParity, RmsNormWithoutWeightMatchesEquinox) { rms_norm_case("rms_norm_plain", false, false); }
TEST(ElementwiseParity, RmsNormWithEquinoxDefaultsMatches) { rms_norm_case("rms_norm_bias", true, true); }
TEST(ElementwiseParity, LayerNormMatchesEquinox) { layer_norm_case("layer_norm", true, true); }
TEST(ElementwiseParity, LayerNormWithoutAffineMatchesEquinox) { layer_norm_case("layer_norm_plain", false, false); }
TEST(ElementwiseParity, LayerNormWithWeightOnlyMatchesEquinox) { layer_norm_case("layer_norm_weight", true, false); }

void softmax_case(std::string_view name) {
  const Fixture f = Fixture::load(name);
  std::vector<int64_t> dims;
  const auto x = f.input("x", &dims);
  ASSERT_EQ(dims.size(), 2u);
  SoftmaxArgs a;
  a.x = const_view(x, shape_of(dims));
  expect_matches_jax(f, "y", [&](Backend* b, std::vector<float>& out) {
    a.y = view(out, shape_of(dims));
    b ? b->softmax(a) : ops::ref::softmax(a);
  });
}

TEST(ElementwiseParity, SoftmaxMatchesJax) { softmax_case("softmax"); }
TEST(ElementwiseParity, SoftmaxOfMaskedRowsMatchesJax) { softmax_case("softmax_masked"); }

void rope_case(std::string_view name) {
  const Fixture f = Fixture::load(name);
  std::vector<int64_t> dims;
  const auto x = f.input("x", &dims);
  ASSERT_EQ(dims.size(), 3u);
  const auto positions = int32_input(name, "positions");
  ASSERT_EQ(static_cast<int64_t>(positions.size()), dims[0]);
  RopeArgs a;
  a.positions = positions.data();
  a.theta = f.params().at("theta").get<float>();
  expect_matches_jax(f, "y", [&](Backend* b, std::vector<float>& out) {
    out = x;  // in place
    a.x = view(out, shape_of(dims));
    b ? b->rope(a) : ops::ref::rope(a);
  });
}

TEST(ElementwiseParity, RopeMatchesTheTransformerFamily) { rope_case("rope"); }
TEST(ElementwiseParity, RopeWithAnOddHeadDimMatches) { rope_case("rope_odd"); }

void unary_case(std::string_view name, UnaryOp op) {
  const Fixture f = Fixture::load(name);
  std::vector<int64_t> dims;
  const auto x = f.input("x", &dims);
  UnaryArgs a;
  a.op = op;
  a.x = const_view(x, shape_of(dims));
  expect_matches_jax(f, "y", [&](Backend* b, std::vector<float>& out) {
    a.y = view(out, shape_of(dims));
    b ? b->unary(a) : ops::ref::unary(a);
  });
}

TEST(ElementwiseParity, SiluMatchesJax) { unary_case("silu", UnaryOp::kSilu); }
TEST(ElementwiseParity, GeluMatchesJax) { unary_case("gelu", UnaryOp::kGelu); }
TEST(ElementwiseParity, GeluTanhMatchesJax) { unary_case("gelu_tanh", UnaryOp::kGeluTanh); }
TEST(ElementwiseParity, SoftplusMatchesJax) { unary_case("softplus", UnaryOp::kSoftplus); }

TEST(ElementwiseParity, SiluMulMatchesJax) {
  const Fixture f = Fixture::load("silu_mul");
  std::vector<int64_t> dims;
  const auto gate = f.input("gate", &dims);
  const auto up = f.input("up");
  SiluMulArgs a;
  a.gate = const_view(gate, shape_of(dims));
  a.up = const_view(up, shape_of(dims));
  expect_matches_jax(f, "y", [&](Backend* b, std::vector<float>& out) {
    a.y = view(out, shape_of(dims));
    b ? b->silu_mul(a) : ops::ref::silu_mul(a);
  });
}

TEST(ElementwiseParity, AddMatchesJax) {
  const Fixture f = Fixture::load("add");
  std::vector<int64_t> dims;
  const auto x = f.input("a", &dims);
  const auto z = f.input("b");
  AddArgs a;
  a.a = const_view(x, shape_of(dims));
  a.b = const_view(z, shape_of(dims));
  expect_matches_jax(f, "y", [&](Backend* b, std::vector<float>& out) {
    a.y = view(out, shape_of(dims));
    b ? b->add(a) : ops::ref::add(a);
  });
}

class EmbeddingParity : public ::testing::TestWithParam<const char*> {};

TEST_P(EmbeddingParity, GatherMatchesJax) {
  const std::string name = cat("embedding_", GetParam());
  const Fixture f = Fixture::load(name);
  const RawTensor table = raw_input(name, "table");
  const auto dtype = dtype_from_name(f.params().at("dtype").get<std::string>());
  ASSERT_TRUE(dtype) << f.params().dump();
  const int64_t vocab = table.dims.at(0), dim = f.params().at("dim").get<int64_t>();
  // Block types are stored as u8 [vocab, row bytes]; the view says what the bytes mean.
  const ConstTensorView table_view = ConstTensorView::contiguous(table.bytes, *dtype, Shape{vocab, dim});
  const auto ids = int32_input(name, "ids");
  EmbeddingArgs a;
  a.table = table_view;
  a.ids = ids.data();
  a.n = static_cast<int64_t>(ids.size());
  expect_matches_jax(f, "y", [&](Backend* b, std::vector<float>& out) {
    a.y = view(out, Shape{a.n, dim});
    b ? b->embedding(a) : ops::ref::embedding(a);
  });
}

INSTANTIATE_TEST_SUITE_P(Tables, EmbeddingParity, ::testing::Values("f32", "f16", "bf16", "q8_0", "q4_0", "nf4"),
                         [](const ::testing::TestParamInfo<const char*>& info) { return std::string(info.param); });

// The comparison itself must be able to fail: a perturbed result is caught.
TEST(ElementwiseParity, AllCloseRejectsAPerturbedResult) {
  const Fixture f = Fixture::load("softmax");
  auto want = f.output("y");
  auto got = want;
  got[got.size() / 2] += 1e-3f;
  EXPECT_FALSE(all_close(got, want, f.tolerance()));
  EXPECT_FALSE(close_or_same_special(got, want, f.tolerance()));
  got = want;
  got[0] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_FALSE(all_close(got, want, f.tolerance()));
  EXPECT_FALSE(close_or_same_special(got, want, f.tolerance()));
  got = want;
  got[1] = std::numeric_limits<float>::infinity();
  EXPECT_FALSE(close_or_same_special(got, want, f.tolerance()));
}

}  // namespace
}  // namespace bf::parity
