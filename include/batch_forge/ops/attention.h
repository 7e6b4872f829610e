// Fused attention over a paged KV cache (DESIGN.md "SeqState"): K and V of every sequence live in
// fixed-size pages of one pool; a sequence names its pages in order in a page table.
//
// Batched: the rows of q/out are the new tokens of several sequences back to back. Sequence s owns
// rows [q_begin, q_begin + q_len) and sees kv_len keys (those already cached plus its new ones,
// which the caller has written into its pages before the call). Its j-th new token sits at
// absolute position kv_len − q_len + j. With `causal`, that token attends to keys at positions
// ≤ its own; without, to all kv_len keys. Query head h reads KV head h / (n_heads / n_kv_heads).
// Memory beyond the inputs and outputs is O(q rows · head_dim), never O(kv_len²).
#pragma once

#include <cstdint>
#include <span>

#include "batch_forge/core/tensor.h"

namespace bf {

struct KvPagesView {
  ConstTensorView k;  // [n_pages, page_size, n_kv_heads, head_dim] f32
  ConstTensorView v;  // [n_pages, page_size, n_kv_heads, head_dim] f32
};

// The new tokens' K and V written into their slots of one layer's paged cache, before the attention
// that reads them (vLLM's reshape_and_cache): row r of k and v goes to page slots[r] / page_size,
// row slots[r] % page_size of k_cache and v_cache. Slots must be distinct (rows are copied in
// parallel); every other slot is left as it was.
struct KvWriteArgs {
  ConstTensorView k;               // [n_rows, n_kv_heads, head_dim] f32; rows any stride, heads dense
  ConstTensorView v;               // [n_rows, n_kv_heads, head_dim] f32, the same
  std::span<const int64_t> slots;  // [n_rows], each in [0, n_pages · page_size)
  TensorView k_cache;              // [n_pages, page_size, n_kv_heads, head_dim] f32, contiguous
  TensorView v_cache;              // the same shape, contiguous
};

struct AttentionSeq {
  int64_t q_begin = 0;
  int64_t q_len = 0;
  int64_t kv_len = 0;              // ≥ q_len
  std::span<const int32_t> pages;  // ceil(kv_len / page_size) page indices, in order
};

struct AttentionArgs {
  ConstTensorView q;  // [n_rows, n_heads, head_dim] f32
  KvPagesView kv;
  std::span<const AttentionSeq> seqs;
  bool causal = true;
  float scale = 0;  // score scale, usually 1 / sqrt(head_dim)
  TensorView out;   // [n_rows, n_heads, head_dim] f32; overwritten
};

}  // namespace bf
