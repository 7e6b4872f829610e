// Benchmark group "attention": fused attention over the paged KV cache, the flash kernel (custom)
// against materialized attention through OpenBLAS (vendor), one sequence per call:
//   prefill  q_len = kv_len = seq, causal: compute bound (flops halved by the mask);
//   decode   q_len = 1, kv_len = seq: bound by reading the KV cache (copies_for_dram copies of it,
//            so each call streams from DRAM rather than the last-level cache).
// Shapes: seq 512…4096 × head_dim 64 and 128 with 8 query and 8 KV heads, plus GQA (8 query heads
// over 2 KV heads). --quick: seq 2048, head_dim 64, prefill only.
// The shape string also carries each side's extra memory per thread (the same string on both
// records, so the driver pairs them for the speedup column): the flash side's is fixed by
// head_dim, the materialized side's grows with q_len · kv_len.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <numeric>
#include <vector>

#include "backends/cpu/attention_internal.h"
#include "bench/bench.h"

namespace bf::bench {
namespace {

constexpr int64_t kPageSize = 16;

struct AttentionShape {
  int64_t seq = 0;
  int64_t head_dim = 0;
  int64_t n_heads = 8;
  int64_t n_kv_heads = 8;
  bool decode = false;  // q_len 1 (else q_len = kv_len = seq)

  int64_t q_len() const { return decode ? 1 : seq; }
  int64_t n_pages() const { return (seq + kPageSize - 1) / kPageSize; }
};

std::string human_bytes(size_t bytes) {
  char buf[32];
  if (bytes < (size_t{1} << 20))
    std::snprintf(buf, sizeof buf, "%.0fK", bytes / 1024.0);
  else
    std::snprintf(buf, sizeof buf, "%.1fM", bytes / 1048576.0);
  return buf;
}

// `copies` independent sets of q, K/V pools and out in backend memory; page tables in a fixed
// shuffled order (pages of a real cache are rarely consecutive).
class Problem {
 public:
  Problem(Backend& backend, const AttentionShape& s, int copies) : s_(s) {
    const int64_t q_floats = s.q_len() * s.n_heads * s.head_dim;
    const int64_t kv_floats = s.n_pages() * kPageSize * s.n_kv_heads * s.head_dim;
    for (int c = 0; c < copies; ++c) {
      Copy copy{backend.allocate(q_floats * 4), backend.allocate(kv_floats * 4), backend.allocate(kv_floats * 4),
                backend.allocate(q_floats * 4)};
      fill_random(reinterpret_cast<float*>(copy.q->data()), q_floats, 10 + 4 * c);
      fill_random(reinterpret_cast<float*>(copy.k->data()), kv_floats, 11 + 4 * c);
      fill_random(reinterpret_cast<float*>(copy.v->data()), kv_floats, 12 + 4 * c);
      std::fill_n(reinterpret_cast<float*>(copy.out->data()), q_floats, 0.0f);
      copies_.push_back(std::move(copy));
    }
    pages_.resize(static_cast<size_t>(s.n_pages()));
    std::iota(pages_.begin(), pages_.end(), 0);
    uint64_t state = 1;  // a fixed Fisher-Yates shuffle (LCG), the same on every run
    for (size_t i = pages_.size(); i > 1; --i) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      std::swap(pages_[i - 1], pages_[(state >> 33) % i]);
    }
    seq_ = {0, s.q_len(), s.seq, pages_};
  }

  AttentionArgs args(size_t copy) const {
    const Copy& c = copies_[copy % copies_.size()];
    const Shape q_shape{s_.q_len(), s_.n_heads, s_.head_dim};
    const Shape kv_shape{s_.n_pages(), kPageSize, s_.n_kv_heads, s_.head_dim};
    AttentionArgs a;
    a.q = ConstTensorView::contiguous({c.q->data(), c.q->size()}, DType::kF32, q_shape);
    a.kv.k = ConstTensorView::contiguous({c.k->data(), c.k->size()}, DType::kF32, kv_shape);
    a.kv.v = ConstTensorView::contiguous({c.v->data(), c.v->size()}, DType::kF32, kv_shape);
    a.seqs = std::span(&seq_, 1);
    a.causal = true;
    a.scale = 1.0f / std::sqrt(static_cast<float>(s_.head_dim));
    a.out = TensorView::contiguous({c.out->data(), c.out->size()}, DType::kF32, q_shape);
    return a;
  }

 private:
  struct Copy {
    std::unique_ptr<Buffer> q, k, v, out;
  };
  AttentionShape s_;
  std::vector<Copy> copies_;
  std::vector<int32_t> pages_;
  AttentionSeq seq_;
};

void run_shape(Context& ctx, std::vector<Record>& records, const AttentionShape& s) {
  const double q = static_cast<double>(s.q_len()), kv = static_cast<double>(s.seq);
  // q·kᵀ and p·v: 2 flops per multiply-add each; a causal prefill needs half of the pairs.
  const double flops = 4.0 * q * kv * s.head_dim * s.n_heads * (s.decode ? 1.0 : 0.5);
  // From DRAM per call: q, K, V, out (the K/V of the KV heads, read once each).
  const double bytes = 4.0 * (2 * q * s.n_heads * s.head_dim + 2 * kv * s.n_kv_heads * s.head_dim);
  const std::string shape =
      cat(s.decode ? "decode" : "prefill", " seq=", s.seq, " hd=", s.head_dim, " heads=", s.n_heads, "/", s.n_kv_heads,
          " causal, scratch/thread flash ", human_bytes(cpu::attn::flash_scratch_bytes(s.head_dim)), " vendor ",
          human_bytes(cpu::attn::vendor_scratch_bytes(s.q_len(), s.seq, s.head_dim)));
  const int copies = copies_for_dram(static_cast<size_t>(bytes));
  const Problem problem(ctx.backend, s, copies);

  OpDesc desc;
  desc.kind = OpKind::kAttention;
  desc.dtype = DType::kF32;
  desc.m = s.q_len();
  const KernelPreference previous = ctx.backend.kernel_preference();
  for (const KernelPreference side : {KernelPreference::kVendor, KernelPreference::kCustom}) {
    if (side == KernelPreference::kVendor ? !ctx.run_vendor() : !ctx.run_custom()) continue;
    ctx.backend.set_kernel_preference(side);
    const std::optional<KernelInfo> info = ctx.backend.supports_op(desc);
    if (!info) continue;
    size_t call = 0;
    const double seconds = time_per_call(
        [&] {
          ctx.backend.attention(problem.args(call++));
          ctx.backend.synchronize();
        },
        0.2, copies);
    records.push_back({"attention", shape, "f32", info->name, info->vendor, seconds, flops, bytes});
  }
  ctx.backend.set_kernel_preference(previous);
}

void attention_group(Context& ctx, std::vector<Record>& records) {
  if (ctx.quick) {
    run_shape(ctx, records, {2048, 64, 8, 8, false});
    return;
  }
  for (const bool decode : {false, true})
    for (const int64_t hd : {64, 128})
      for (const int64_t seq : {512, 1024, 2048, 4096}) run_shape(ctx, records, {seq, hd, 8, 8, decode});
  run_shape(ctx, records, {2048, 64, 8, 2, false});  // GQA: 4 query heads per KV head
  run_shape(ctx, records, {4096, 128, 8, 2, true});
}

const bool registered = register_group("attention", attention_group);

}  // namespace
}  // namespace bf::bench
