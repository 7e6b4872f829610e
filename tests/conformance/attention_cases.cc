// Fused attention over the paged KV cache against ops::ref::attention, on every backend variant,
// for both kernel sides (the flash kernel and the materialized vendor one); bitwise equality of
// 1 and 3 threads; rows no sequence covers; what supports_op reports. Argument validation and
// the CPU internals (exp2, row softmax, scratch sizes) are in attention_checks_cases.cc.
#include <cstring>

#include "attention_paged.h"
#include "batch_forge/core/error.h"
#include "conformance.h"
#include "ops/reference.h"

namespace bf::conformance {
namespace {

// The shapes every side must get right: head_dim 64, 128 and odd ones; GQA, MQA and a group
// wider than one tile; page sizes 16 and 12 (not a power of two) and 5; batches mixing a prefill
// (q_len = kv_len), a decode (q_len = 1, long kv_len) and a chunked prefill (1 < q_len < kv_len),
// causal and full; prefills longer than one query tile and one key block (96 keys); tiles of up
// to 8 rows (decode, short chunks: the row form) and of more (the column form).
std::vector<AttentionCase> attention_cases() {
  std::vector<AttentionCase> cases;
  cases.push_back({"mixed_gqa_hd64_ps16", 8, 2, 64, 16, {{40, 40}, {1, 300}, {24, 90}}, true, 1.0f, 0, 11});
  cases.push_back({"mixed_gqa_hd64_ps16_full", 8, 2, 64, 16, {{40, 40}, {1, 300}, {24, 90}}, false, 1.0f, 0, 12});
  cases.push_back({"mixed_hd128_ps12", 4, 4, 128, 12, {{33, 33}, {1, 150}, {10, 61}}, true, 1.0f, 0, 13});
  cases.push_back({"mixed_hd40_group3_ps12", 6, 2, 40, 12, {{70, 70}, {1, 97}, {9, 50}}, true, 1.0f, 0, 14});
  cases.push_back({"mixed_hd40_group3_ps12_full", 6, 2, 40, 12, {{70, 70}, {1, 97}, {9, 50}}, false, 1.0f, 0, 15});
  cases.push_back({"long_prefill_peaky", 2, 1, 64, 16, {{150, 150}, {60, 260}}, true, 6.0f, 0, 16});
  cases.push_back(
      {"mqa_decode_batch_hd32", 8, 1, 32, 16, {{1, 1}, {1, 17}, {1, 96}, {1, 97}, {1, 200}}, true, 1.0f, 0, 17});
  cases.push_back({"group_wider_than_tile", 96, 1, 8, 5, {{3, 3}, {1, 20}, {2, 11}}, true, 1.0f, 0, 18});
  cases.push_back({"row_tiles_hd72", 6, 2, 72, 16, {{2, 250}, {1, 193}, {3, 3}}, true, 1.0f, 0, 20});
  cases.push_back({"row_tiles_hd72_full", 6, 2, 72, 16, {{2, 250}, {1, 193}, {3, 3}}, false, 1.0f, 0, 22});
  cases.push_back({"hd1_ps1", 3, 3, 1, 1, {{5, 5}, {2, 9}}, true, 2.0f, 0, 19});
  return cases;
}

// f32 accumulation against the double reference, over up to a few hundred keys.
constexpr Tolerance kTolerance{1e-5, 1e-4};

const KernelPreference kSides[] = {KernelPreference::kCustom, KernelPreference::kVendor};

std::vector<float> run(Backend& backend, KernelPreference side, const PagedAttention& p, float fill = 0.0f) {
  std::vector<float> out(p.q.size(), fill);
  backend.set_kernel_preference(side);
  backend.attention(p.args(out));
  backend.synchronize();
  return out;
}

std::vector<float> run_reference(const PagedAttention& p) {
  std::vector<float> out(p.q.size(), 0.0f);
  ops::ref::attention(p.args(out));
  return out;
}

TEST_P(BackendTest, AttentionMatchesReference) {
  for (const AttentionCase& c : attention_cases()) {
    const PagedAttention p(c);
    const std::vector<float> want = run_reference(p);
    for (KernelPreference side : kSides) {
      SCOPED_TRACE(cat(c.name, ", kernels ", kernel_preference_name(side)));
      EXPECT_TRUE(all_close(run(backend(), side, p), want, kTolerance));
    }
  }
}

// The answer must not depend on how many threads computed it (nor on which ran which chunk).
TEST_P(BackendTest, AttentionIsBitwiseTheSameOnOneThread) {
  if (GetParam().backend != "cpu") GTEST_SKIP() << "threads are a CPU option";
  BackendOptions one_thread = GetParam().options;
  one_thread.threads = 1;
  auto single = create_backend("cpu", one_thread);
  for (const AttentionCase& c : attention_cases()) {
    const PagedAttention p(c);
    for (KernelPreference side : kSides) {
      SCOPED_TRACE(cat(c.name, ", kernels ", kernel_preference_name(side)));
      const std::vector<float> got = run(backend(), side, p);
      const std::vector<float> want = run(*single, side, p);
      EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0);
    }
  }
}

TEST_P(BackendTest, AttentionLeavesUncoveredRowsAlone) {
  const AttentionCase c{"gap", 4, 2, 24, 8, {{5, 12}, {1, 30}}, true, 1.0f, /*gap_rows=*/3, 21};
  const PagedAttention p(c);
  const std::vector<float> want = run_reference(p);
  const int64_t row_floats = 4 * 24;
  for (KernelPreference side : kSides) {
    SCOPED_TRACE(kernel_preference_name(side));
    const std::vector<float> got = run(backend(), side, p, /*fill=*/-7.0f);
    for (int64_t i = 5 * row_floats; i < 8 * row_floats; ++i) ASSERT_EQ(got[i], -7.0f) << "element " << i;
    std::vector<float> covered = got;
    std::fill(covered.begin() + 5 * row_floats, covered.begin() + 8 * row_floats, 0.0f);  // as the reference left them
    EXPECT_TRUE(all_close(covered, want, kTolerance));
  }
}

// Strided q (rows of a fused QKV projection) and K/V pools with padding between heads.
TEST_P(BackendTest, AttentionReadsStridedOperands) {
  const AttentionCase c{"strided", 4, 2, 16, 4, {{6, 6}, {1, 9}}, true, 1.0f, 0, 23};
  const PagedAttention p(c);
  // q inside [rows, 8, 16]: heads 0..3 used, the rest filler; k/v inside [pages, 4, 3, 16].
  std::vector<float> q_wide(static_cast<size_t>(p.rows * 8 * 16), 1e6f);
  for (int64_t r = 0; r < p.rows; ++r) std::copy_n(p.q.begin() + r * 64, 64, q_wide.begin() + r * 128);
  std::vector<float> k_wide(static_cast<size_t>(p.n_pages * 4 * 3 * 16), 1e6f), v_wide = k_wide;
  for (int64_t slot = 0; slot < p.n_pages * 4; ++slot) {
    std::copy_n(p.k.begin() + slot * 32, 32, k_wide.begin() + slot * 48);
    std::copy_n(p.v.begin() + slot * 32, 32, v_wide.begin() + slot * 48);
  }
  std::vector<float> want(p.q.size());
  ops::ref::attention(p.args(want));
  for (KernelPreference side : kSides) {
    SCOPED_TRACE(kernel_preference_name(side));
    std::vector<float> out(p.q.size());
    AttentionArgs a = p.args(out);
    a.q = const_view_of(q_wide, {p.rows, 8, 16});
    a.q.shape = {p.rows, 4, 16};
    a.kv.k = const_view_of(k_wide, {p.n_pages, 4, 3, 16});
    a.kv.k.shape = {p.n_pages, 4, 2, 16};
    a.kv.v = const_view_of(v_wide, {p.n_pages, 4, 3, 16});
    a.kv.v.shape = {p.n_pages, 4, 2, 16};
    backend().set_kernel_preference(side);
    backend().attention(a);
    backend().synchronize();
    EXPECT_TRUE(all_close(out, want, kTolerance));
  }
}

// The last key row of the pool ends the buffer and head_dim (40) is no multiple of a vector:
// kernels must mask their loads there (AddressSanitizer builds catch a read past the end).
TEST_P(BackendTest, AttentionReadsNothingPastTheLastKeyRow) {
  const AttentionCase c{"edge", 2, 1, 40, 7, {{7, 7}}, true, 1.0f, 0, 25};
  const PagedAttention p(c);  // 4 pages; use only the last one, so its last row ends the buffer
  std::vector<float> k_exact(p.k.end() - 7 * 40, p.k.end()), v_exact(p.v.end() - 7 * 40, p.v.end());
  const int32_t page[] = {0};
  for (const bool decode : {false, true}) {
    std::vector<AttentionSeq> seqs = {{0, decode ? 1 : 7, 7, page}};
    std::vector<float> want(p.q.size(), 0.0f);
    AttentionArgs a = p.args(want);
    a.kv.k = const_view_of(k_exact, {1, 7, 1, 40});
    a.kv.v = const_view_of(v_exact, {1, 7, 1, 40});
    a.seqs = seqs;
    ops::ref::attention(a);
    for (KernelPreference side : kSides) {
      SCOPED_TRACE(cat(decode ? "decode" : "prefill", ", kernels ", kernel_preference_name(side)));
      std::vector<float> out(p.q.size(), 0.0f);
      a.out = view_of(out, p.q_shape());
      backend().set_kernel_preference(side);
      backend().attention(a);
      backend().synchronize();
      EXPECT_TRUE(all_close(out, want, kTolerance));
    }
  }
}

TEST_P(BackendTest, AttentionReportsItsKernel) {
  OpDesc desc;
  desc.kind = OpKind::kAttention;
  desc.dtype = DType::kF32;
  desc.m = 128;
  backend().set_kernel_preference(KernelPreference::kAuto);
  const auto automatic = backend().supports_op(desc);
  ASSERT_TRUE(automatic.has_value());
  EXPECT_FALSE(automatic->vendor) << automatic->name;  // auto runs the flash kernel
  EXPECT_NE(automatic->name.find("flash"), std::string::npos) << automatic->name;
  backend().set_kernel_preference(KernelPreference::kVendor);
  const auto vendor = backend().supports_op(desc);
  ASSERT_TRUE(vendor.has_value());
  if (GetParam().backend == "cpu") {
    EXPECT_TRUE(vendor->vendor) << vendor->name;
  }
  desc.dtype = DType::kF16;
  EXPECT_FALSE(backend().supports_op(desc).has_value());
}

}  // namespace
}  // namespace bf::conformance
