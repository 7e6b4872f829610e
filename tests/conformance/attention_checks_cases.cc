// Attention, the parts around the numbers: argument validation (every backend, and the
// reference, reject the same malformed calls with an error naming the argument), and the CPU
// internals the kernels are built from — exp2 and the row softmax at every ISA level, and the
// scratch sizes that keep the flash side's memory independent of the sequence length.
#include <cmath>
#include <functional>
#include <limits>

#include "attention_paged.h"
#include "backends/cpu/attention_internal.h"
#include "backends/cpu/isa.h"
#include "batch_forge/core/error.h"
#include "conformance.h"
#include "ops/reference.h"

namespace bf::conformance {
namespace {

// Runs `call` and checks that it throws Error(kInvalidArgument, "attention") mentioning `needle`.
template <typename Fn>
::testing::AssertionResult rejects(Fn&& call, const std::string& needle) {
  try {
    call();
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kInvalidArgument || e.component() != "attention")
      return ::testing::AssertionFailure() << "wrong error: " << e.what();
    if (e.message().find(needle) == std::string::npos)
      return ::testing::AssertionFailure() << "message lacks '" << needle << "': " << e.what();
    return ::testing::AssertionSuccess() << e.what();
  }
  return ::testing::AssertionFailure() << "no error; expected one about '" << needle << "'";
}

TEST_P(BackendTest, AttentionRejectsMalformedArguments) {
  const AttentionCase c{"base", 4, 2, 8, 4, {{3, 3}, {1, 6}}, true, 1.0f, 0, 31};
  const PagedAttention p(c);
  std::vector<float> out(p.q.size());
  std::vector<float> small(8);
  std::vector<uint16_t> halves(p.q.size());
  const int32_t bad_low[] = {-1, 0};
  std::vector<int32_t> bad_high(p.tables[1]);
  bad_high.back() = static_cast<int32_t>(p.n_pages);
  const int32_t one_page[] = {0};

  struct Breakage {
    std::string needle;
    std::function<void(AttentionArgs&, std::vector<AttentionSeq>&)> apply;
  };
  const std::vector<Breakage> breakages = {
      {"q must be",
       [&](AttentionArgs& a, auto&) {
         a.q = const_view_of(small, {2, 4});
       }},
      {"q must be f32",
       [&](AttentionArgs& a, auto&) {
         a.q = ConstTensorView::contiguous(std::as_bytes(std::span(halves)), DType::kF16, p.q_shape());
       }},
      {"out must have q's shape",
       [&](AttentionArgs& a, auto&) {
         a.out = view_of(small, {1, 1, 8});
       }},
      {"same shape",
       [&](AttentionArgs& a, auto&) {
         a.kv.v.shape = {p.n_pages, 2, 2, 8};
       }},
      {"head_dim",
       [&](AttentionArgs& a, auto&) {
         a.kv.k.shape = {p.n_pages, 4, 4, 4}, a.kv.v.shape = a.kv.k.shape;
         a.kv.k.strides = a.kv.v.strides = contiguous_strides(a.kv.k.shape);
       }},
      {"multiple of n_kv_heads",
       [&](AttentionArgs& a, auto&) {
         a.kv.k.shape = {p.n_pages, 4, 3, 8}, a.kv.v.shape = a.kv.k.shape;
         a.kv.k.strides = a.kv.v.strides = contiguous_strides(a.kv.k.shape);
       }},
      {"stride 1",
       [&](AttentionArgs& a, auto&) {
         a.q.strides = {64, 16, 2}, a.q.shape = {4, 4, 8};
       }},
      {"contiguous",
       [&](AttentionArgs& a, auto&) {
         a.out.strides = {64, 8, 1};
       }},
      {"scale must be finite", [&](AttentionArgs& a, auto&) { a.scale = std::numeric_limits<float>::quiet_NaN(); }},
      {"outside q's", [&](AttentionArgs&, auto& seqs) { seqs[1].q_begin = 4; }},
      {"outside q's", [&](AttentionArgs&, auto& seqs) { seqs[0].q_begin = -1; }},
      {"share q rows", [&](AttentionArgs&, auto& seqs) { seqs[1].q_begin = 2; }},
      {"kv_len", [&](AttentionArgs&, auto& seqs) { seqs[0].kv_len = 2; }},
      {"pages for kv_len", [&](AttentionArgs&, auto& seqs) { seqs[1].pages = std::span(one_page); }},
      {"outside the pool", [&](AttentionArgs&, auto& seqs) { seqs[0].pages = std::span(bad_low); }},
      {"outside the pool", [&](AttentionArgs&, auto& seqs) { seqs[1].pages = bad_high; }},
  };
  for (const Breakage& b : breakages) {
    SCOPED_TRACE(b.needle);
    std::vector<AttentionSeq> seqs = p.seqs;
    AttentionArgs a = p.args(out);
    b.apply(a, seqs);
    a.seqs = seqs;
    for (KernelPreference side : {KernelPreference::kCustom, KernelPreference::kVendor}) {
      backend().set_kernel_preference(side);
      EXPECT_TRUE(rejects([&] { backend().attention(a); }, b.needle));
    }
    EXPECT_TRUE(rejects([&] { ops::ref::attention(a); }, b.needle));
  }
  // And the unbroken arguments pass.
  AttentionArgs good = p.args(out);
  EXPECT_NO_THROW(backend().attention(good));
}

// ---- CPU internals ---------------------------------------------------------------------------

std::vector<cpu::Isa> supported_isas() {
  std::vector<cpu::Isa> out;
  for (cpu::Isa isa : {cpu::Isa::kAvx512, cpu::Isa::kAvx2, cpu::Isa::kScalar})
    if (cpu::isa_supported(isa)) out.push_back(isa);
  return out;
}

TEST(AttentionCpuInternals, Exp2IsAccurateAndFlushesMinusInfinityToZero) {
  std::vector<float> x;
  for (float v = -126.0f; v <= 127.0f; v += 0.0137f) x.push_back(v);  // the normal range, off-grid
  for (float v = -1.0f; v <= 1.0f; v += 1.0f / 1024) x.push_back(v);  // where the polynomial works
  for (int i = -126; i <= 127; ++i) x.push_back(static_cast<float>(i));
  const size_t n_normal = x.size();
  const float inf = std::numeric_limits<float>::infinity();
  x.insert(x.end(), {-inf, -1e30f, -127.5f, -200.0f});  // all exactly 0
  for (cpu::Isa isa : supported_isas()) {
    SCOPED_TRACE(cpu::isa_name(isa));
    std::vector<float> y(x.size());
    cpu::attn::exp2_array(isa, x.data(), y.data(), static_cast<int64_t>(x.size()));
    double worst = 0;
    for (size_t i = 0; i < n_normal; ++i) worst = std::max(worst, std::abs(y[i] / std::exp2(double{x[i]}) - 1));
    EXPECT_LT(worst, 3e-7);
    for (size_t i = n_normal; i < x.size(); ++i) EXPECT_EQ(y[i], 0.0f) << "exp2(" << x[i] << ")";
    // exp through exp2, as the kernels use it: e^x = 2^(x·log2 e), within ~1e-6 for |x| ≤ 16.
    for (float v = -16.0f; v <= 16.0f; v += 0.01f) {
      const float arg = v * 1.44269504f;
      float e;
      cpu::attn::exp2_array(isa, &arg, &e, 1);
      EXPECT_NEAR(e / std::exp(double{v}), 1.0, 1.5e-6) << "exp(" << v << ")";
    }
  }
}

TEST(AttentionCpuInternals, RowSoftmaxMatchesDoubleAndZeroesTheMaskedTail) {
  for (cpu::Isa isa : supported_isas()) {
    SCOPED_TRACE(cpu::isa_name(isa));
    const cpu::attn::SoftmaxRowFn softmax = cpu::attn::softmax_row_log2(isa);
    for (int64_t total : {1, 7, 8, 15, 16, 17, 40, 100}) {
      for (int64_t visible : {int64_t{1}, total / 2 + 1, total}) {
        const std::vector<float> s = random_normal(static_cast<size_t>(total), 40 + total, 8.0f);
        std::vector<float> got = s;
        softmax(got.data(), visible, total);
        double max = -INFINITY, sum = 0;
        for (int64_t i = 0; i < visible; ++i) max = std::max(max, double{s[i]});
        for (int64_t i = 0; i < visible; ++i) sum += std::exp2(s[i] - max);
        std::vector<float> want(static_cast<size_t>(total), 0.0f);
        for (int64_t i = 0; i < visible; ++i) want[i] = static_cast<float>(std::exp2(s[i] - max) / sum);
        EXPECT_TRUE(all_close(got, want, {1e-7, 1e-6})) << total << " keys, " << visible << " visible";
      }
    }
  }
}

// The flash kernel's extra memory is sized from head_dim and the tile constants only:
// flash_scratch_floats(head_dim) takes nothing else, and the kernel carves its scratch from
// exactly that many floats per thread. The materialized side needs O(q_len · kv_len).
TEST(AttentionCpuInternals, FlashScratchDoesNotGrowWithSequenceLength) {
  using namespace cpu::attn;
  for (int64_t hd : {40, 64, 128}) {
    const size_t flash = flash_scratch_bytes(hd);
    EXPECT_EQ(flash, (2 * kTileRows * hd + kKeyBlock * kTileRows + 3 * kTileRows + 16) * sizeof(float));
    EXPECT_LT(flash, size_t{160} << 10) << "head_dim " << hd;  // fits the L2 cache of one core
    for (int64_t seq : {512, 2048, 4096, 1 << 20})
      EXPECT_GT(vendor_scratch_bytes(seq, seq, hd), flash * static_cast<size_t>(seq) / 64);
  }
  // Quadratic growth of the materialized side: doubling seq multiplies it by ~4 (not so the flash).
  const double r = double(vendor_scratch_bytes(4096, 4096, 64)) / double(vendor_scratch_bytes(2048, 2048, 64));
  EXPECT_GT(r, 3.5);
}

}  // namespace
}  // namespace bf::conformance
