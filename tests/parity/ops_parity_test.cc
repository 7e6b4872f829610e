// Scalar references of src/ops/ against JAX/Equinox. Each case: load the fixture JAX wrote,
// run the reference on its inputs, compare with the fixture's stated tolerance.
#include <gtest/gtest.h>

#include "ops/norm.h"
#include "ops/softmax.h"
#include "parity.h"

namespace bf::parity {
namespace {

TEST(OpsParity, RmsNormMatchesEquinox) {
  const Fixture f = Fixture::load("rms_norm");
  std::vector<int64_t> dims;
  const auto x = f.input("x", &dims);
  ASSERT_EQ(dims.size(), 2u);
  const auto weight = f.input("weight");
  std::vector<float> y(x.size());
  ops::ref::rms_norm(x, weight, y, dims[0], dims[1], f.params().at("eps").get<float>());
  EXPECT_TRUE(all_close(y, f.output("y"), f.tolerance()));
}

TEST(OpsParity, LayerNormMatchesEquinox) {
  const Fixture f = Fixture::load("layer_norm");
  std::vector<int64_t> dims;
  const auto x = f.input("x", &dims);
  ASSERT_EQ(dims.size(), 2u);
  std::vector<float> y(x.size());
  ops::ref::layer_norm(x, f.input("weight"), f.input("bias"), y, dims[0], dims[1], f.params().at("eps").get<float>());
  EXPECT_TRUE(all_close(y, f.output("y"), f.tolerance()));
}

TEST(OpsParity, SoftmaxMatchesJax) {
  const Fixture f = Fixture::load("softmax");
  std::vector<int64_t> dims;
  const auto x = f.input("x", &dims);
  ASSERT_EQ(dims.size(), 2u);
  std::vector<float> y(x.size());
  ops::ref::softmax(x, y, dims[0], dims[1]);
  EXPECT_TRUE(all_close(y, f.output("y"), f.tolerance()));
}

// The comparison itself must be able to fail: a perturbed result is caught.
TEST(OpsParity, AllCloseRejectsAPerturbedResult) {
  const Fixture f = Fixture::load("softmax");
  auto want = f.output("y");
  auto got = want;
  got[got.size() / 2] += 1e-3f;
  EXPECT_FALSE(all_close(got, want, f.tolerance()));
  got = want;
  got[0] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_FALSE(all_close(got, want, f.tolerance()));
}

}  // namespace
}  // namespace bf::parity
