// A paged-attention problem for the conformance cases: sequences of (q_len, kv_len) back to
// back in q, their K/V spread over a shuffled pool of pages (plus spare pages no sequence uses),
// all filled from one seed.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "batch_forge/ops/attention.h"
#include "conformance.h"

namespace bf::conformance {

struct SeqSpec {
  int64_t q_len = 0;
  int64_t kv_len = 0;
};

struct AttentionCase {
  std::string name;
  int64_t n_heads = 1, n_kv_heads = 1, head_dim = 1, page_size = 1;
  std::vector<SeqSpec> seqs;
  bool causal = true;
  float q_gain = 1.0f;   // > 1 makes the softmax peaky (large logits need the max subtraction)
  int64_t gap_rows = 0;  // rows of q after the first sequence that no sequence covers
  uint64_t seed = 1;
};

class PagedAttention {
 public:
  explicit PagedAttention(const AttentionCase& c) : case_(c) {
    std::mt19937_64 rng(c.seed);
    std::vector<int64_t> n_seq_pages;
    int64_t n_used = 0;
    for (const SeqSpec& s : c.seqs) {
      n_seq_pages.push_back((s.kv_len + c.page_size - 1) / c.page_size);
      n_used += n_seq_pages.back();
    }
    n_pages = n_used + 3;  // spare pages hold values no sequence may read
    std::vector<int32_t> order(static_cast<size_t>(n_pages));
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    int64_t next_page = 0;
    rows = 0;
    for (size_t s = 0; s < c.seqs.size(); ++s) {
      tables.emplace_back(order.begin() + next_page, order.begin() + next_page + n_seq_pages[s]);
      next_page += n_seq_pages[s];
      seqs.push_back({rows, c.seqs[s].q_len, c.seqs[s].kv_len, {}});
      rows += c.seqs[s].q_len + (s == 0 ? c.gap_rows : 0);
    }
    for (size_t s = 0; s < seqs.size(); ++s) seqs[s].pages = tables[s];  // tables no longer grows
    q = random_normal(static_cast<size_t>(rows * c.n_heads * c.head_dim), c.seed + 1, c.q_gain);
    const auto kv_size = static_cast<size_t>(n_pages * c.page_size * c.n_kv_heads * c.head_dim);
    k = random_normal(kv_size, c.seed + 2);
    v = random_normal(kv_size, c.seed + 3);
  }

  PagedAttention(const PagedAttention&) = delete;  // seqs point into tables
  PagedAttention& operator=(const PagedAttention&) = delete;

  Shape q_shape() const { return {rows, case_.n_heads, case_.head_dim}; }
  Shape kv_shape() const { return {n_pages, case_.page_size, case_.n_kv_heads, case_.head_dim}; }

  // Arguments writing into `out` (sized like q).
  AttentionArgs args(std::vector<float>& out) const {
    AttentionArgs a;
    a.q = const_view_of(q, q_shape());
    a.kv.k = const_view_of(k, kv_shape());
    a.kv.v = const_view_of(v, kv_shape());
    a.seqs = seqs;
    a.causal = case_.causal;
    a.scale = 1.0f / std::sqrt(static_cast<float>(case_.head_dim));
    a.out = view_of(out, q_shape());
    return a;
  }

  int64_t rows = 0, n_pages = 0;
  std::vector<float> q;                      // [rows, n_heads, head_dim]
  std::vector<float> k;                      // [n_pages, page_size, n_kv_heads, head_dim]
  std::vector<float> v;                      // [n_pages, page_size, n_kv_heads, head_dim]
  std::vector<std::vector<int32_t>> tables;  // per sequence, its pages in order
  std::vector<AttentionSeq> seqs;

 private:
  AttentionCase case_;
};

}  // namespace bf::conformance
