// Materialized attention through OpenBLAS, the vendor side of the attention op
// (KernelPreference::kVendor): per (sequence, query head), gather the sequence's K and V of that
// head's KV head out of the pages into contiguous [kv_len, head_dim] scratch, then
//   S = scale·log2(e) · Q·Kᵀ   (cblas_sgemm, [q_len, kv_len])
//   P = softmax of each row of S over the keys its token sees, 0 past its position
//   O = P·V                     (cblas_sgemm, straight into out)
// It is the textbook formulation the flash kernel is measured against, and what it costs is the
// point: O(q_len · kv_len) memory per thread for S, and the full q_len × kv_len GEMMs even where
// the causal mask zeroes half of P.
//
// The scratch (K, V, S) is kept per thread between calls and only grows, so the baseline is not
// charged for page faults on every call; it is released when the thread exits.
//
// Thread safety of the BLAS: Debian's serial OpenBLAS (0.3.21, built without USE_LOCKING) claims
// its packing buffers without a lock, so two threads in sgemm at once can share one and compute
// wrong results (seen here: ~1 call in 2,000 of a 3-thread loop). With that library the GEMM calls
// of this file take turns under a mutex (gathers and softmax still run in parallel); with a
// threaded OpenBLAS (pinned to one thread by the backend), which locks, they run concurrently.
#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <numbers>
#include <optional>
#include <vector>

#include "backends/cpu/attention_internal.h"

namespace bf::cpu::attn {
namespace {

struct VendorScratch {
  std::vector<float> k;  // [kv_len, head_dim]
  std::vector<float> v;  // [kv_len, head_dim]
  std::vector<float> q;  // [q_len, head_dim], only when q's rows are too close for sgemm's lda
  std::vector<float> s;  // [q_len, kv_len]
};

// Held around sgemm when the linked OpenBLAS is the unlocked serial build.
class BlasGuard {
 public:
  BlasGuard() : lock_(mutex(), std::defer_lock) {
    static const bool serial = openblas_get_parallel() == 0;
    if (serial) lock_.lock();
  }

 private:
  static std::mutex& mutex() {
    static std::mutex m;
    return m;
  }
  std::unique_lock<std::mutex> lock_;
};

float* grow(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

}  // namespace

size_t vendor_scratch_bytes(int64_t q_len, int64_t kv_len, int64_t head_dim) {
  const auto q = static_cast<size_t>(q_len), kv = static_cast<size_t>(kv_len), hd = static_cast<size_t>(head_dim);
  return (2 * kv * hd + q * kv) * sizeof(float);
}

void vendor_attention(const CpuContext& ctx, const AttentionArgs& args) {
  const int64_t n_heads = args.q.shape[1], hd = args.q.shape[2];
  const int64_t page_size = args.kv.k.shape[1], n_kv_heads = args.kv.k.shape[2];
  const int64_t group = n_heads / n_kv_heads;
  const auto* q = reinterpret_cast<const float*>(args.q.data);
  const auto* k = reinterpret_cast<const float*>(args.kv.k.data);
  const auto* v = reinterpret_cast<const float*>(args.kv.v.data);
  auto* out = reinterpret_cast<float*>(args.out.data);
  const Shape &qs = args.q.strides, &ks = args.kv.k.strides, &vs = args.kv.v.strides;
  const auto alpha = static_cast<float>(static_cast<double>(args.scale) * std::numbers::log2e);
  const SoftmaxRowFn softmax_row = softmax_row_log2(ctx.isa);  // the one dispatch of this call

  struct Item {
    int64_t seq, head;
  };
  std::vector<Item> items;
  for (size_t s = 0; s < args.seqs.size(); ++s)
    if (args.seqs[s].q_len > 0)
      for (int64_t h = 0; h < n_heads; ++h) items.push_back({static_cast<int64_t>(s), h});

  ctx.pool->parallel_for(static_cast<int64_t>(items.size()), 1, [&](int64_t begin, int64_t end) {
    thread_local VendorScratch scratch;
    for (int64_t i = begin; i < end; ++i) {
      const AttentionSeq& seq = args.seqs[items[i].seq];
      const int64_t h = items[i].head, g = h / group;
      const int64_t q_len = seq.q_len, kv_len = seq.kv_len;
      const auto kv_floats = static_cast<size_t>(kv_len * hd);
      float* kc = grow(scratch.k, kv_floats);                           // [kv_len, hd]
      float* vc = grow(scratch.v, kv_floats);                           // [kv_len, hd]
      float* s = grow(scratch.s, static_cast<size_t>(q_len * kv_len));  // [q_len, kv_len]
      for (int64_t t = 0; t < kv_len; ++t) {
        const int64_t page = seq.pages[t / page_size], slot = t % page_size;
        std::memcpy(kc + t * hd, k + page * ks[0] + slot * ks[1] + g * ks[2], hd * sizeof(float));
        std::memcpy(vc + t * hd, v + page * vs[0] + slot * vs[1] + g * vs[2], hd * sizeof(float));
      }
      // Q rows of this head sit qs[0] apart; sgemm needs that to be ≥ head_dim (else gather them).
      const float* qh = q + seq.q_begin * qs[0] + h * qs[1];
      int64_t lda = qs[0];
      if (lda < hd) {
        float* qc = grow(scratch.q, static_cast<size_t>(q_len * hd));
        for (int64_t j = 0; j < q_len; ++j) std::memcpy(qc + j * hd, qh + j * qs[0], hd * sizeof(float));
        qh = qc, lda = hd;
      }
      std::optional<BlasGuard> guard(std::in_place);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(q_len), static_cast<int>(kv_len),
                  static_cast<int>(hd), alpha, qh, static_cast<int>(lda), kc, static_cast<int>(hd), 0.0f, s,
                  static_cast<int>(kv_len));
      guard.reset();
      for (int64_t j = 0; j < q_len; ++j) {
        const int64_t pos = kv_len - q_len + j;
        softmax_row(s + j * kv_len, args.causal ? pos + 1 : kv_len, kv_len);
      }
      float* oh = out + (seq.q_begin * n_heads + h) * hd;  // out is contiguous: rows n_heads·hd apart
      guard.emplace();
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(q_len), static_cast<int>(hd),
                  static_cast<int>(kv_len), 1.0f, s, static_cast<int>(kv_len), vc, static_cast<int>(hd), 0.0f, oh,
                  static_cast<int>(n_heads * hd));
    }
  });
}

}  // namespace bf::cpu::attn
