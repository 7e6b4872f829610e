// kv_write: new tokens' K and V rows into their paged-cache slots. Every backend against the
// reference: rows read with a stride (the columns of a fused q/k/v projection), slots in any order
// and across pages, every slot not named left as it was; and malformed calls rejected by name.
#include <cstring>
#include <functional>
#include <numeric>

#include "batch_forge/core/error.h"
#include "conformance.h"
#include "ops/reference.h"

namespace bf::conformance {
namespace {

struct KvWriteCase {
  int64_t rows, n_kv_heads, head_dim, pages, page_size, row_stride;
};

TEST_P(BackendTest, KvWriteMatchesReference) {
  const KvWriteCase cases[] = {
      {1, 1, 1, 1, 1, 1}, {5, 2, 8, 3, 4, 40}, {37, 3, 64, 6, 16, 960}, {300, 1, 24, 20, 16, 31}};
  uint64_t seed = 900;
  for (const KvWriteCase& c : cases) {
    SCOPED_TRACE(cat("rows ", c.rows, ", kv heads ", c.n_kv_heads, ", head_dim ", c.head_dim, ", pages ", c.pages,
                     " × ", c.page_size));
    const int64_t width = c.n_kv_heads * c.head_dim, slots_total = c.pages * c.page_size;
    const int64_t stride = std::max(c.row_stride, width);
    const auto k = random_normal(static_cast<size_t>(c.rows * stride), ++seed);
    const auto v = random_normal(static_cast<size_t>(c.rows * stride), ++seed);
    // Distinct slots, scattered: a stride coprime with the cache's slot count walks all of them.
    std::vector<int64_t> slots(static_cast<size_t>(c.rows));
    int64_t step = 7;
    while (std::gcd(step, slots_total) != 1) ++step;
    for (int64_t r = 0; r < c.rows; ++r) slots[r] = (3 + r * step) % slots_total;
    const Shape cache_shape{c.pages, c.page_size, c.n_kv_heads, c.head_dim};
    const auto before = random_normal(static_cast<size_t>(slots_total * width), ++seed);

    auto args = [&](std::vector<float>& kc, std::vector<float>& vc) {
      KvWriteArgs a;
      a.k = {reinterpret_cast<const std::byte*>(k.data()), DType::kF32, Shape{c.rows, c.n_kv_heads, c.head_dim},
             Shape{stride, c.head_dim, 1}};
      a.v = {reinterpret_cast<const std::byte*>(v.data()), DType::kF32, Shape{c.rows, c.n_kv_heads, c.head_dim},
             Shape{stride, c.head_dim, 1}};
      a.slots = slots;
      a.k_cache = view_of(kc, cache_shape);
      a.v_cache = view_of(vc, cache_shape);
      return a;
    };
    std::vector<float> want_k = before, want_v = before, got_k = before, got_v = before;
    ops::ref::kv_write(args(want_k, want_v));
    backend().kv_write(args(got_k, got_v));
    backend().synchronize();
    EXPECT_EQ(std::memcmp(got_k.data(), want_k.data(), got_k.size() * sizeof(float)), 0);
    EXPECT_EQ(std::memcmp(got_v.data(), want_v.data(), got_v.size() * sizeof(float)), 0);
    // The reference itself: the named slots hold the rows, the others are untouched.
    std::vector<bool> named(static_cast<size_t>(slots_total));
    for (int64_t r = 0; r < c.rows; ++r) {
      named[slots[r]] = true;
      EXPECT_EQ(std::memcmp(&want_k[slots[r] * width], &k[r * stride], width * sizeof(float)), 0) << "row " << r;
      EXPECT_EQ(std::memcmp(&want_v[slots[r] * width], &v[r * stride], width * sizeof(float)), 0) << "row " << r;
    }
    for (int64_t s = 0; s < slots_total; ++s) {
      if (!named[s]) {
        EXPECT_EQ(std::memcmp(&want_k[s * width], &before[s * width], width * sizeof(float)), 0);
      }
    }
  }
  const auto info = backend().supports_op({OpKind::kKvWrite, DType::kF32});
  ASSERT_TRUE(info);
  EXPECT_FALSE(backend().supports_op({OpKind::kKvWrite, DType::kF16}));
}

TEST_P(BackendTest, KvWriteRejectsMalformedArguments) {
  std::vector<float> rows(2 * 2 * 4, 1.0f), cache(3 * 2 * 2 * 4), other(3 * 2 * 2 * 4), small(2 * 4);
  const std::vector<int64_t> slots = {0, 5};
  const std::vector<int64_t> out_of_range = {0, 6}, negative = {-1, 2}, one = {0};
  auto base = [&] {
    KvWriteArgs a;
    a.k = a.v = const_view_of(rows, Shape{2, 2, 4});
    a.slots = slots;
    a.k_cache = view_of(cache, Shape{3, 2, 2, 4});
    a.v_cache = view_of(other, Shape{3, 2, 2, 4});
    return a;
  };
  ASSERT_NO_THROW(backend().kv_write(base()));
  struct Case {
    const char* needle;
    std::function<void(KvWriteArgs&)> edit;
  };
  const std::vector<Case> cases = {
      {"slots[1] = 6 is outside", [&](KvWriteArgs& a) { a.slots = out_of_range; }},
      {"slots[0] = -1 is outside", [&](KvWriteArgs& a) { a.slots = negative; }},
      {"1 slots for 2 rows", [&](KvWriteArgs& a) { a.slots = one; }},
      {"v must have k's shape",
       [&](KvWriteArgs& a) {
         a.v = const_view_of(rows, Shape{2, 1, 8});
       }},
      {"do not fit the cache",
       [&](KvWriteArgs& a) {
         a.k = a.v = const_view_of(rows, Shape{2, 1, 8});
       }},
      {"k must be f32 [rows, n_kv_heads, head_dim]",
       [&](KvWriteArgs& a) {
         a.k = const_view_of(rows, Shape{4, 4});
       }},
      {"dense heads",
       [&](KvWriteArgs& a) {
         a.k.strides = Shape{8, 5, 1};
       }},
      {"v_cache must have k_cache's shape",
       [&](KvWriteArgs& a) {
         a.v_cache = view_of(small, Shape{1, 1, 2, 4});
       }},
      {"k_cache must be contiguous",
       [&](KvWriteArgs& a) {
         a.k_cache.strides = Shape{32, 16, 4, 1};
       }},
  };
  for (const Case& c : cases) {
    KvWriteArgs a = base();
    c.edit(a);
    for (const bool reference : {false, true}) {
      try {
        reference ? ops::ref::kv_write(a) : backend().kv_write(a);
        ADD_FAILURE() << "no error for " << c.needle;
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
        EXPECT_EQ(e.component(), "kv_write") << e.what();
        EXPECT_NE(e.message().find(c.needle), std::string::npos) << e.what();
      }
    }
  }
}

}  // namespace
}  // namespace bf::conformance
