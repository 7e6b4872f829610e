// Internals of the CPU attention kernels, shared by attention.cc (entry and dispatch),
// attention_flash.cc (the flash driver), attention_flash_kernels.cc and
// attention_flash_row_kernels.cc (its per-ISA inner loops), attention_exp.cc (vectorized exp2 and the row softmax) and
// attention_vendor.cc (the materialized OpenBLAS side). Declared here so tests can reach the exp and the scratch sizes.
//
// Flash layout: a work item is one query tile — up to kTileRows rows, each a (new token, query
// head) pair of one sequence and one KV head group — and the key loop runs over blocks of
// kKeyBlock keys found through the page table. Two tile forms:
//  * Column tiles (more than kRowTileMaxRows rows: prefill, chunked prefill) hold everything
//    transposed, rows innermost: Qᵀ [head_dim, rows_pad], scores Sᵀ [kKeyBlock, rows_pad],
//    output Oᵀ [head_dim, rows_pad]. Every vector runs over query rows: q·k is a broadcast key
//    element times a row of Qᵀ (no packing of the paged keys, no horizontal sums), the softmax
//    max and sum are vertical, p·v is a broadcast value element times a row of Pᵀ. The cost is a
//    transpose of Q in and O out per work item.
//  * Row tiles (up to kRowTileMaxRows rows: decode, small GQA groups) keep rows outermost and run
//    vectors along head_dim, reading each key and value row once, front to back; a column tile
//    of one row would fill 1 lane in 16 and walk each key row one element per pass.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backends/cpu/kernels.h"

namespace bf::cpu::attn {

inline constexpr int64_t kTileRows = 64;       // rows of one work item: 4 AVX-512 vectors
inline constexpr int64_t kKeyBlock = 96;       // keys per online-softmax step (a multiple of every key micro-tile)
inline constexpr int64_t kRowAlign = 16;       // rows are padded to a multiple of the widest vector
inline constexpr int64_t kRowTileMaxRows = 8;  // tiles of at most this many rows use the row form

// Scratch of one flash work item; every array is 64-byte aligned and rows_pad a multiple of
// kRowAlign, so row vectors never straddle the end of an array.
struct FlashTile {
  int64_t rows_pad = 0;  // rows of this tile rounded up to kRowAlign; padding rows are zero queries
  int64_t head_dim = 0;
  float* qt = nullptr;    // [head_dim, rows_pad] Q tile, transposed, scaled by scale · log2(e)
  float* ot = nullptr;    // [head_dim, rows_pad] Σ p·v so far (unnormalized), transposed
  float* st = nullptr;    // [kKeyBlock, rows_pad] scores of one key block, then their exp2
  float* m = nullptr;     // [rows_pad] running max of the scores (log2 domain)
  float* l = nullptr;     // [rows_pad] running Σ exp2(score − m)
  float* corr = nullptr;  // [rows_pad] exp2(m_before − m_after) of the last softmax step
};

// Scratch of a row tile (carved from the same buffer as a column tile, which is larger).
struct FlashRowTile {
  int64_t rows = 0;  // ≤ kRowTileMaxRows
  int64_t head_dim = 0;
  int64_t hd_pad = 0;     // head_dim rounded up to kRowAlign: the row stride of q and o
  float* q = nullptr;     // [rows, hd_pad] queries scaled by scale · log2(e), zero padded
  float* o = nullptr;     // [rows, hd_pad] Σ p·v so far (unnormalized)
  float* s = nullptr;     // [rows, kKeyBlock] scores of one key block, then their exp2
  float* m = nullptr;     // [rows] running max (log2 domain)
  float* l = nullptr;     // [rows] running Σ exp2(score − m)
  float* corr = nullptr;  // [rows] exp2(m_before − m_after) of the last softmax step
};

// Floats of scratch one flash work item needs: 2·kTileRows·head_dim + kKeyBlock·kTileRows +
// 3·kTileRows, plus alignment slack. Depends on head_dim and the tile constants only — never on
// kv_len or q_len — which is how the flash side keeps its extra memory O(rows · head_dim).
size_t flash_scratch_floats(int64_t head_dim);
// Bytes the flash side holds per thread for head_dim.
size_t flash_scratch_bytes(int64_t head_dim);
// Bytes the materialized side holds per thread for one (sequence, head) of q_len × kv_len:
// the gathered K and V [kv_len, head_dim] and the score matrix [q_len, kv_len].
size_t vendor_scratch_bytes(int64_t q_len, int64_t kv_len, int64_t head_dim);

// The per-ISA inner loops of the flash kernel, chosen once per op call.
struct FlashKernels {
  // Sᵀ[t, r] = Σ_d keys[t][d] · Qᵀ[d, r] for t < n_keys, all rows_pad rows. keys[t]: [head_dim].
  void (*scores)(const FlashTile& tile, const float* const* keys, int64_t n_keys);
  // One online-softmax step over Sᵀ[0, n_keys): m ← max(m, max_t Sᵀ), corr ← exp2(m_old − m),
  // Sᵀ ← exp2(Sᵀ − m), l ← l · corr + Σ_t Sᵀ.
  void (*softmax)(const FlashTile& tile, int64_t n_keys);
  // Oᵀ[d, r] ← Oᵀ[d, r] · corr[r] + Σ_t values[t][d] · Sᵀ[t, r]. values[t]: [head_dim].
  void (*accumulate)(const FlashTile& tile, const float* const* values, int64_t n_keys);
  // Qᵀ[d, r] = q_rows[r][d] · scale for r < rows; 0 for the padding rows up to rows_pad.
  void (*load_q)(const FlashTile& tile, const float* const* q_rows, int64_t rows, float scale);
  // out_rows[r][d] = Oᵀ[d, r] · inv_l[r] for r < rows, d < head_dim.
  void (*store_out)(const FlashTile& tile, float* const* out_rows, int64_t rows, const float* inv_l);
};
FlashKernels flash_kernels(Isa isa);

// The same three steps for row tiles (attention_flash_row_kernels.cc): S[r, t] = Σ_d Q[r, d]·K[t, d];
// the online-softmax step along each row of S; O[r, d] ← O[r, d]·corr[r] + Σ_t S[r, t]·V[t, d].
struct FlashRowKernels {
  void (*scores)(const FlashRowTile& tile, const float* const* keys, int64_t n_keys);
  void (*softmax)(const FlashRowTile& tile, int64_t n_keys);
  void (*accumulate)(const FlashRowTile& tile, const float* const* values, int64_t n_keys);
};
FlashRowKernels flash_row_kernels(Isa isa);

// y[i] = 2^x[i] for x ≤ 127: −inf (and anything below −126.5) → 0, relative error < 2.5e-7
// over the normal range (a degree-6 polynomial on [−½, ½] and an exponent shift). exp(x) is exp2(x·log2 e);
// both attention sides fold log2 e into the score scale, so it costs no extra multiply.
void exp2_array(Isa isa, const float* x, float* y, int64_t n);

// Softmax of one row of scores in the log2 domain, in place: s[i] ← exp2(s[i] − max) / Σ for
// i < n_visible (max and Σ over those), 0 for n_visible ≤ i < n_total (the causal mask).
using SoftmaxRowFn = void (*)(float* s, int64_t n_visible, int64_t n_total);
SoftmaxRowFn softmax_row_log2(Isa isa);

void flash_attention(const CpuContext& ctx, const AttentionArgs& args);
void vendor_attention(const CpuContext& ctx, const AttentionArgs& args);

}  // namespace bf::cpu::attn
