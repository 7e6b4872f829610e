// Linear against JAX/Equinox, every weight type: the scalar reference and the CPU backend (each
// kernel side) on the fixture's inputs, held to the fixture's tolerance for each case (a bound
// computed from the inputs by python/batch_forge/fixture_ops/linear.py; for q8_0 / q4_0 it
// includes the int8 activations of the custom kernels).
#include <gtest/gtest.h>

#include <cstring>

#include "batch_forge/backends/backend.h"
#include "batch_forge/core/error.h"
#include "ops/reference.h"
#include "parity.h"
#include "support/paths.h"

namespace bf::parity {
namespace {

struct Case {
  int64_t m, n, k;
  std::vector<float> x, bias, scale, want;
  DType dtype;
  std::vector<std::byte> weight;  // as stored: f32/f16/bf16/f8 elements or raw blocks
  double atol;

  LinearArgs args(std::vector<float>& y) const {
    LinearArgs a;
    a.x = ConstTensorView::contiguous(std::as_bytes(std::span(x)), DType::kF32, Shape{m, k});
    a.weight = ConstTensorView::contiguous(weight, dtype, Shape{n, k});
    if (!scale.empty()) a.scale = ConstTensorView::contiguous(std::as_bytes(std::span(scale)), DType::kF32, Shape{n});
    if (!bias.empty()) a.bias = ConstTensorView::contiguous(std::as_bytes(std::span(bias)), DType::kF32, Shape{n});
    y.assign(m * n, 0.0f);
    a.y = TensorView::contiguous(std::as_writable_bytes(std::span(y)), DType::kF32, Shape{m, n});
    return a;
  }
};

std::vector<Case> load_cases(const std::string& name) {
  const Fixture f = Fixture::load(name);
  // The weight tensors are not f32: read their bytes from the file itself.
  const SafetensorsFile file = SafetensorsFile::open(testing::binary_dir() + "/fixtures/" + name + ".safetensors");
  const auto dtype = dtype_from_name(f.params().at("dtype").get<std::string>());
  if (!dtype) throw Error(ErrorCode::kInvalidFile, "parity", cat(name, ": unknown weight type"));
  std::vector<Case> cases;
  const auto& list = f.params().at("cases");
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string c = cat("c", i);
    Case cs;
    cs.m = list[i].at("m");
    cs.n = list[i].at("n");
    cs.k = list[i].at("k");
    cs.atol = list[i].at("atol");
    cs.dtype = *dtype;
    cs.x = f.input(c + ".x");
    if (list[i].at("bias").get<bool>()) cs.bias = f.input(c + ".bias");
    if (*dtype == DType::kF8E4M3) cs.scale = f.input(c + ".scale");
    cs.want = f.output(c + ".y");
    const TensorInfo* w = file.find("input." + c + ".weight");
    if (!w) throw Error(ErrorCode::kInvalidFile, "parity", cat(name, ": no weight for case ", c));
    const auto bytes = file.data(*w);
    cs.weight.assign(bytes.begin(), bytes.end());  // a copy: aligned for the f32 kernels
    cases.push_back(std::move(cs));
  }
  EXPECT_FALSE(cases.empty());
  return cases;
}

class LinearParity : public ::testing::TestWithParam<const char*> {};

TEST_P(LinearParity, ReferenceAndCpuBackendMatchJax) {
  const std::string name = cat("linear_", GetParam());
  const auto cases = load_cases(name);
  auto cpu = create_backend("cpu");
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    const Tolerance tol{c.atol, 0.0};
    SCOPED_TRACE(cat(name, " case ", i, ": m=", c.m, " n=", c.n, " k=", c.k, " atol ", c.atol));
    std::vector<float> y;
    ops::ref::linear(c.args(y));
    EXPECT_TRUE(all_close(y, c.want, tol)) << "ops::ref::linear";
    for (KernelPreference side : {KernelPreference::kAuto, KernelPreference::kVendor, KernelPreference::kCustom}) {
      cpu->set_kernel_preference(side);
      cpu->linear(c.args(y));
      cpu->synchronize();
      EXPECT_TRUE(all_close(y, c.want, tol))
          << "cpu " << kernel_preference_name(side) << ": "
          << cpu->supports_op({OpKind::kLinear, c.dtype, c.m, c.n, c.k})->name;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(WeightTypes, LinearParity,
                         ::testing::Values("f32", "f16", "bf16", "f8_e4m3", "q8_0", "q4_0", "nf4"),
                         [](const ::testing::TestParamInfo<const char*>& info) { return std::string(info.param); });

}  // namespace
}  // namespace bf::parity
