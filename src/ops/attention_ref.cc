// Fused attention over the paged KV cache (ops/attention.h): argument validation and the scalar
// reference. The reference is the definition the CPU kernels are checked against: for every
// sequence, query head and new token, softmax(q·kᵀ·scale + mask)·v over the keys that token sees,
// in double, one key at a time, straight from the pages (no gather, no tiling, no online softmax).
//
// Layout rules checked here (and relied on by every backend):
//   q, out  [rows, n_heads, head_dim] f32; the innermost stride is 1, the others ≥ 0 for q; out
//           is contiguous (it is written, and overlapping rows would race between threads).
//   k, v    [n_pages, page_size, n_kv_heads, head_dim] f32, same shape, innermost stride 1.
// Rows of q/out that no sequence covers are neither read nor written.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "batch_forge/core/error.h"
#include "ops/reference.h"

namespace bf::ops {
namespace {

[[noreturn]] void fail(std::string_view message) { throw Error(ErrorCode::kInvalidArgument, "attention", message); }

// Rank, dtype, unit innermost stride, non-negative strides and f32 alignment of one operand.
void check_operand(const ConstTensorView& t, const char* name, int rank, const char* dims) {
  if (t.shape.rank() != rank) fail(cat(name, " must be ", dims, " (rank ", rank, ") but has shape ", t.shape));
  if (t.dtype != DType::kF32) fail(cat(name, " must be f32 but is ", dtype_name(t.dtype)));
  if (t.strides.rank() != rank) fail(cat(name, " has ", t.strides.rank(), " strides for rank ", rank));
  if (t.numel() == 0) return;
  if (t.data == nullptr) fail(cat(name, " has no data for shape ", t.shape));
  if (t.strides[rank - 1] != 1) fail(cat(name, " must have stride 1 along head_dim but has ", t.strides));
  for (int i = 0; i < rank; ++i)
    if (t.strides[i] < 0) fail(cat(name, " has a negative stride: ", t.strides));
  if (reinterpret_cast<uintptr_t>(t.data) % alignof(float) != 0)
    fail(cat(name, " is not aligned to ", alignof(float), " bytes; copy it first"));
}

// Number of pages that hold `kv_len` keys; no overflow for any kv_len ≥ 0.
int64_t pages_for(int64_t kv_len, int64_t page_size) { return kv_len / page_size + (kv_len % page_size != 0); }

// Element offset of [i0, i1, i2(, i3)] in a strided view.
int64_t offset3(const Shape& s, int64_t i0, int64_t i1, int64_t i2) { return i0 * s[0] + i1 * s[1] + i2 * s[2]; }
int64_t offset4(const Shape& s, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
  return i0 * s[0] + i1 * s[1] + i2 * s[2] + i3 * s[3];
}

}  // namespace

void validate(const AttentionArgs& args) {
  check_operand(args.q, "q", 3, "[rows, n_heads, head_dim]");
  check_operand(args.kv.k, "k", 4, "[n_pages, page_size, n_kv_heads, head_dim]");
  check_operand(args.kv.v, "v", 4, "[n_pages, page_size, n_kv_heads, head_dim]");
  check_operand(ConstTensorView{args.out.data, args.out.dtype, args.out.shape, args.out.strides}, "out", 3,
                "[rows, n_heads, head_dim]");

  const int64_t rows = args.q.shape[0], n_heads = args.q.shape[1], head_dim = args.q.shape[2];
  if (n_heads < 1 || head_dim < 1)
    fail(cat("q must have at least one head of head_dim ≥ 1 but has shape ", args.q.shape));
  if (args.out.shape != args.q.shape) fail(cat("out must have q's shape ", args.q.shape, " but has ", args.out.shape));
  if (args.out.numel() > 0 && !args.out.is_contiguous())
    fail(cat("out must be contiguous but has strides ", args.out.strides, " for shape ", args.out.shape));
  if (args.kv.k.shape != args.kv.v.shape)
    fail(cat("k and v must have the same shape but have ", args.kv.k.shape, " and ", args.kv.v.shape));
  const Shape& kv = args.kv.k.shape;
  const int64_t n_pages = kv[0], page_size = kv[1], n_kv_heads = kv[2];
  if (page_size < 1) fail(cat("k/v page_size must be ≥ 1 but k has shape ", kv));
  if (n_kv_heads < 1) fail(cat("k/v must have at least one KV head but k has shape ", kv));
  if (kv[3] != head_dim) fail(cat("k/v head_dim ", kv[3], " differs from q's head_dim ", head_dim));
  if (n_heads % n_kv_heads != 0)
    fail(cat("n_heads (", n_heads, ") must be a multiple of n_kv_heads (", n_kv_heads, ")"));
  if (!std::isfinite(args.scale)) fail(cat("scale must be finite but is ", args.scale));

  // Sequences: row ranges inside q, pairwise disjoint; kv_len ≥ q_len; enough pages, all in range.
  std::vector<std::pair<int64_t, int64_t>> ranges;  // [q_begin, q_end) of non-empty sequences
  for (size_t s = 0; s < args.seqs.size(); ++s) {
    const AttentionSeq& seq = args.seqs[s];
    if (seq.q_begin < 0 || seq.q_len < 0 || seq.q_begin > rows || seq.q_len > rows - seq.q_begin)
      fail(cat("seqs[", s, "] covers rows [", seq.q_begin, ", ", seq.q_begin, " + ", seq.q_len, ") outside q's ", rows,
               " rows"));
    if (seq.kv_len < seq.q_len)
      fail(cat("seqs[", s, "] has kv_len ", seq.kv_len, " < q_len ", seq.q_len,
               " (the new tokens must already be in the cache)"));
    const int64_t need = pages_for(seq.kv_len, page_size);
    if (static_cast<int64_t>(seq.pages.size()) < need)
      fail(cat("seqs[", s, "] has ", seq.pages.size(), " pages for kv_len ", seq.kv_len, " but needs ", need,
               " of page_size ", page_size));
    for (size_t i = 0; i < seq.pages.size(); ++i)
      if (seq.pages[i] < 0 || seq.pages[i] >= n_pages)
        fail(cat("seqs[", s, "].pages[", i, "] = ", seq.pages[i], " is outside the pool of ", n_pages, " pages"));
    if (seq.q_len > 0) ranges.emplace_back(seq.q_begin, seq.q_begin + seq.q_len);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second)
      fail(cat("two sequences share q rows: [", ranges[i - 1].first, ", ", ranges[i - 1].second, ") and [",
               ranges[i].first, ", ", ranges[i].second, ")"));
}

void ref::attention(const AttentionArgs& args) {
  validate(args);
  const int64_t n_heads = args.q.shape[1], head_dim = args.q.shape[2];
  const int64_t page_size = args.kv.k.shape[1], n_kv_heads = args.kv.k.shape[2];
  const int64_t group = n_heads / n_kv_heads;
  const auto* q = reinterpret_cast<const float*>(args.q.data);
  const auto* k = reinterpret_cast<const float*>(args.kv.k.data);
  const auto* v = reinterpret_cast<const float*>(args.kv.v.data);
  auto* out = reinterpret_cast<float*>(args.out.data);

  std::vector<double> scores;                              // [kv_len] of one query: the reference may hold a whole row
  std::vector<double> acc(static_cast<size_t>(head_dim));  // [head_dim]
  for (const AttentionSeq& seq : args.seqs) {
    scores.resize(static_cast<size_t>(seq.kv_len));
    for (int64_t h = 0; h < n_heads; ++h) {
      const int64_t g = h / group;  // the KV head this query head reads
      for (int64_t j = 0; j < seq.q_len; ++j) {
        const int64_t row = seq.q_begin + j;
        const int64_t pos = seq.kv_len - seq.q_len + j;  // absolute position of this token
        const int64_t n_keys = args.causal ? pos + 1 : seq.kv_len;
        const float* qr = q + offset3(args.q.strides, row, h, 0);  // [head_dim]
        double max = -std::numeric_limits<double>::infinity();
        for (int64_t t = 0; t < n_keys; ++t) {
          const float* kr = k + offset4(args.kv.k.strides, seq.pages[t / page_size], t % page_size, g, 0);
          double dot = 0;
          for (int64_t d = 0; d < head_dim; ++d) dot += double{qr[d]} * double{kr[d]};
          scores[t] = dot * double{args.scale};
          max = std::max(max, scores[t]);
        }
        double sum = 0;
        for (int64_t t = 0; t < n_keys; ++t) sum += scores[t] = std::exp(scores[t] - max);
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t t = 0; t < n_keys; ++t) {
          const float* vr = v + offset4(args.kv.v.strides, seq.pages[t / page_size], t % page_size, g, 0);
          for (int64_t d = 0; d < head_dim; ++d) acc[d] += scores[t] * double{vr[d]};
        }
        float* orow = out + offset3(args.out.strides, row, h, 0);
        for (int64_t d = 0; d < head_dim; ++d) orow[d] = static_cast<float>(acc[d] / sum);
      }
    }
  }
}

// kv_write: k and v rows any stride with dense heads (one copy of n_kv_heads · head_dim floats per
// row); the caches contiguous, since every backend addresses a slot as slot · n_kv_heads · head_dim.
void validate(const KvWriteArgs& args) {
  auto bad = [](std::string_view message) { throw Error(ErrorCode::kInvalidArgument, "kv_write", message); };
  auto check_rows = [&](const ConstTensorView& t, const char* name) {
    if (t.shape.rank() != 3 || t.dtype != DType::kF32 || t.strides.rank() != 3)
      bad(cat(name, " must be f32 [rows, n_kv_heads, head_dim] but is ", dtype_name(t.dtype), " ", t.shape));
    if (t.numel() > 0 && (t.data == nullptr || t.strides[2] != 1 || t.strides[1] != t.shape[2] || t.strides[0] < 0))
      bad(cat(name, " must have dense heads (strides [≥ 0, head_dim, 1]) and data but has strides ", t.strides));
  };
  auto check_cache = [&](const TensorView& t, const char* name) {
    if (t.shape.rank() != 4 || t.dtype != DType::kF32)
      bad(cat(name, " must be f32 [n_pages, page_size, n_kv_heads, head_dim] but is ", dtype_name(t.dtype), " ",
              t.shape));
    if (t.numel() > 0 && (t.data == nullptr || !t.is_contiguous()))
      bad(cat(name, " must be contiguous with data but has strides ", t.strides, " for shape ", t.shape));
  };
  check_rows(args.k, "k");
  check_rows(args.v, "v");
  check_cache(args.k_cache, "k_cache");
  check_cache(args.v_cache, "v_cache");
  if (args.v.shape != args.k.shape) bad(cat("v must have k's shape ", args.k.shape, " but has ", args.v.shape));
  if (args.v_cache.shape != args.k_cache.shape)
    bad(cat("v_cache must have k_cache's shape ", args.k_cache.shape, " but has ", args.v_cache.shape));
  const Shape& c = args.k_cache.shape;
  if (args.k.shape[1] != c[2] || args.k.shape[2] != c[3])
    bad(cat("rows of k ", args.k.shape, " do not fit the cache's [n_kv_heads, head_dim] = [", c[2], ", ", c[3], "]"));
  const int64_t rows = args.k.shape[0], slots = c[0] * c[1];
  if (static_cast<int64_t>(args.slots.size()) != rows)
    bad(cat(args.slots.size(), " slots for ", rows, " rows of k and v"));
  for (int64_t r = 0; r < rows; ++r)
    if (args.slots[r] < 0 || args.slots[r] >= slots)
      bad(cat("slots[", r, "] = ", args.slots[r], " is outside the cache's ", c[0], " pages of ", c[1], " slots"));
}

void ref::kv_write(const KvWriteArgs& args) {
  validate(args);
  const int64_t rows = args.k.shape[0], width = args.k.shape[1] * args.k.shape[2];
  const auto* k = reinterpret_cast<const float*>(args.k.data);
  const auto* v = reinterpret_cast<const float*>(args.v.data);
  auto* kc = reinterpret_cast<float*>(args.k_cache.data);
  auto* vc = reinterpret_cast<float*>(args.v_cache.data);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < width; ++i) {
      kc[args.slots[r] * width + i] = k[r * args.k.strides[0] + i];
      vc[args.slots[r] * width + i] = v[r * args.v.strides[0] + i];
    }
}

}  // namespace bf::ops
