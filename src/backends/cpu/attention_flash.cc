// Flash attention over the paged KV cache: the work plan, the per-tile driver and its scratch.
//
// Work item = one query tile of one sequence and one KV head: up to kTileRows rows, each a
// (new token, query head) pair; the heads of a tile all read the same KV head (GQA), so one pass
// over the keys serves all of them. The driver walks the keys in blocks of kKeyBlock (across page
// boundaries: each key is found through the page table, so any page size works), and for each
// block runs the ISA's scores → mask → online softmax → accumulate: column tiles for tiles of
// many rows (attention_flash_kernels.cc), row tiles for a few (attention_flash_row_kernels.cc;
// decode), see attention_internal.h.
// Causal tiles stop at the key of their last token's position; only blocks that cross a row's
// position are masked element by element.
//
// Memory: the scratch of a work item is flash_scratch_floats(head_dim) floats (plus arrays of
// kKeyBlock and kTileRows pointers on the stack): fixed tile constants times
// head_dim, whatever kv_len and q_len are. It is kept per thread between calls (grow-only, at
// most the largest head_dim seen), so a call allocates only its work plan.
//
// Determinism: a work item is computed by one thread, start to end, in a fixed order; the pool
// only decides which thread. Results are bitwise the same for any thread count.
#include <algorithm>
#include <limits>
#include <numbers>
#include <vector>

#include "backends/cpu/attention_internal.h"

namespace bf::cpu::attn {
namespace {

struct WorkItem {
  int64_t seq = 0;       // index into args.seqs
  int64_t kv_head = 0;   // the KV head every row of the tile reads
  int64_t head0 = 0;     // first query head of the tile
  int64_t n_heads = 0;   // query heads in the tile
  int64_t j0 = 0;        // first new token of the tile (0 = the sequence's row q_begin)
  int64_t n_tokens = 0;  // new tokens in the tile; rows = n_tokens · n_heads
};

// Element pointers and strides of the validated operands.
struct Operands {
  const float* q;
  const float* k;
  const float* v;
  float* out;
  const Shape& q_strides;
  const Shape& k_strides;
  const Shape& v_strides;
  int64_t n_heads, head_dim, page_size;
  float q_scale;  // scale · log2(e): scores come out in the log2 domain, ready for exp2
};

// Tiles in token order (per sequence: tile by tile, every KV head and head group of a tile), so
// that the pool's static shares (Schedule::kStatic) give each thread about the rows whose q the
// projection before wrote into its cache, and whose output the projection after reads there.
// Causal tiles grow with the token, so the first thread's share is the cheap half: it then helps
// with the second share, which runs from its most expensive tile down so that what is left to
// share at the end is small. (SmolLM2-135M 512-token prefill, alternating forwards: median 1–3 %
// faster than the former order, most keys first, claimed dynamically.)
std::vector<WorkItem> plan(const AttentionArgs& args, int64_t n_kv_heads, int64_t group) {
  const int64_t heads_per_tile = std::min(group, kTileRows);
  const int64_t tokens_per_tile = kTileRows / heads_per_tile;
  std::vector<WorkItem> items;
  for (size_t s = 0; s < args.seqs.size(); ++s) {
    const int64_t q_len = args.seqs[s].q_len;
    if (q_len == 0) continue;
    const int64_t n_tiles = (q_len + tokens_per_tile - 1) / tokens_per_tile;
    for (int64_t tile = 0; tile < n_tiles; ++tile)
      for (int64_t g = 0; g < n_kv_heads; ++g)
        for (int64_t hb = 0; hb < group; hb += heads_per_tile) {
          const int64_t j0 = tile * tokens_per_tile;
          items.push_back({static_cast<int64_t>(s), g, g * group + hb, std::min(heads_per_tile, group - hb), j0,
                           std::min(tokens_per_tile, q_len - j0)});
        }
  }
  std::reverse(items.begin() + static_cast<int64_t>(items.size()) / 2, items.end());
  return items;
}

// This thread's scratch, at least `floats` long and 64-byte aligned. Grow-only: it is sized by
// head_dim and the tile constants alone (flash_scratch_floats), so it stays small.
float* thread_scratch(size_t floats) {
  thread_local std::vector<float> buffer;
  if (buffer.size() < floats) buffer.resize(floats);
  const auto addr = reinterpret_cast<uintptr_t>(buffer.data());
  return reinterpret_cast<float*>((addr + 63) & ~uintptr_t{63});
}

// Walks the keys [0, key_end) of one KV head of a sequence in blocks of kKeyBlock, finding each
// key's K and V rows through the page table (any page size; blocks cross page boundaries), and
// calls step(key0, n, k_rows, v_rows) per block.
template <typename Step>
void for_each_key_block(const Operands& op, const AttentionSeq& seq, int64_t kv_head, int64_t key_end, Step&& step) {
  const float* k_rows[kKeyBlock];  // [n] the block's key rows, straight from their pages
  const float* v_rows[kKeyBlock];
  const float* k_head = op.k + kv_head * op.k_strides[2];
  const float* v_head = op.v + kv_head * op.v_strides[2];
  for (int64_t key0 = 0; key0 < key_end; key0 += kKeyBlock) {
    const int64_t n = std::min(kKeyBlock, key_end - key0);
    int64_t page_index = key0 / op.page_size, slot = key0 % op.page_size;
    for (int64_t t = 0; t < n; ++t) {
      const int64_t page = seq.pages[page_index];
      k_rows[t] = k_head + page * op.k_strides[0] + slot * op.k_strides[1];
      v_rows[t] = v_head + page * op.v_strides[0] + slot * op.v_strides[1];
      if (++slot == op.page_size) slot = 0, ++page_index;
    }
    step(key0, n, k_rows, v_rows);
  }
}

// Where the rows of a work item come from and go to: row r is token j0 + r / n_heads of query
// head head0 + r % n_heads, at absolute position first_pos + r / n_heads.
struct TileRows {
  TileRows(const Operands& op, const AttentionSeq& seq, const WorkItem& item)
      : op_(op),
        seq_(seq),
        item_(item),
        first_pos(seq.kv_len - seq.q_len + item.j0),
        last_pos(first_pos + item.n_tokens - 1),
        rows(item.n_tokens * item.n_heads) {}

  int64_t pos(int64_t r) const { return first_pos + r / item_.n_heads; }
  const float* q(int64_t r) const {
    return op_.q + (seq_.q_begin + item_.j0 + r / item_.n_heads) * op_.q_strides[0] +
           (item_.head0 + r % item_.n_heads) * op_.q_strides[1];
  }
  float* out(int64_t r) const {  // out is contiguous
    return op_.out + ((seq_.q_begin + item_.j0 + r / item_.n_heads) * op_.n_heads + item_.head0 + r % item_.n_heads) *
                         op_.head_dim;
  }
  // Keys the tile sees: causal rows stop at their own position, so the tile stops at the last.
  int64_t key_end(bool causal) const { return causal ? last_pos + 1 : seq_.kv_len; }
  // Whether the block [key0, key0 + n) holds a key past some row's position.
  bool crosses(bool causal, int64_t key0, int64_t n) const { return causal && key0 + n - 1 > first_pos; }

 private:
  const Operands& op_;
  const AttentionSeq& seq_;
  const WorkItem& item_;

 public:
  const int64_t first_pos, last_pos, rows;
};

void run_column_item(const FlashKernels& kernels, const AttentionArgs& args, const Operands& op, const WorkItem& item,
                     float* scratch) {
  const AttentionSeq& seq = args.seqs[item.seq];
  const TileRows tr(op, seq, item);
  const int64_t hd = op.head_dim, rows = tr.rows;
  const int64_t rp = (rows + kRowAlign - 1) / kRowAlign * kRowAlign;

  // Carve the scratch at offsets fixed by kTileRows (≥ rp), each a multiple of 16 floats.
  FlashTile tile;
  tile.rows_pad = rp;
  tile.head_dim = hd;
  tile.qt = scratch;                         // [hd, rp]
  tile.ot = tile.qt + hd * kTileRows;        // [hd, rp]
  tile.st = tile.ot + hd * kTileRows;        // [kKeyBlock, rp]
  tile.m = tile.st + kKeyBlock * kTileRows;  // [rp]
  tile.l = tile.m + kTileRows;               // [rp]
  tile.corr = tile.l + kTileRows;            // [rp]

  // Q in, transposed. Padding rows are zero queries; they sort after the real rows, are never
  // masked, never written.
  const float* q_rows[kTileRows];  // [rows]
  for (int64_t r = 0; r < rows; ++r) q_rows[r] = tr.q(r);
  kernels.load_q(tile, q_rows, rows, op.q_scale);
  std::fill(tile.ot, tile.ot + hd * rp, 0.0f);
  std::fill(tile.m, tile.m + rp, -std::numeric_limits<float>::infinity());
  std::fill(tile.l, tile.l + rp, 0.0f);

  for_each_key_block(op, seq, item.kv_head, tr.key_end(args.causal),
                     [&](int64_t key0, int64_t n, const float* const* k_rows, const float* const* v_rows) {
                       kernels.scores(tile, k_rows, n);
                       // Rows are in token order, so the rows that must not see key k are a prefix:
                       // those of tokens before position k, (k − first_pos) · n_heads of them.
                       if (tr.crosses(args.causal, key0, n))
                         for (int64_t t = std::max<int64_t>(0, tr.first_pos + 1 - key0); t < n; ++t) {
                           float* s = tile.st + t * rp;  // [rp]
                           std::fill(s, s + std::min(rp, (key0 + t - tr.first_pos) * item.n_heads),
                                     -std::numeric_limits<float>::infinity());
                         }
                       kernels.softmax(tile, n);
                       kernels.accumulate(tile, v_rows, n);
                     });

  float* inv_l = tile.corr;  // [rp] reused: 1 / l, one division per row instead of per element
  for (int64_t r = 0; r < rows; ++r) inv_l[r] = 1.0f / tile.l[r];
  float* out_rows[kTileRows];  // [rows]
  for (int64_t r = 0; r < rows; ++r) out_rows[r] = tr.out(r);
  kernels.store_out(tile, out_rows, rows, inv_l);
}

void run_row_item(const FlashRowKernels& kernels, const AttentionArgs& args, const Operands& op, const WorkItem& item,
                  float* scratch) {
  const AttentionSeq& seq = args.seqs[item.seq];
  const TileRows tr(op, seq, item);
  const int64_t hd = op.head_dim, rows = tr.rows;

  // Carved from the same scratch as a column tile (2·8·hd_pad + 8·kKeyBlock + 48 floats is less).
  FlashRowTile tile;
  tile.rows = rows;
  tile.head_dim = hd;
  tile.hd_pad = (hd + kRowAlign - 1) / kRowAlign * kRowAlign;
  tile.q = scratch;                                 // [rows, hd_pad]
  tile.o = tile.q + kRowTileMaxRows * tile.hd_pad;  // [rows, hd_pad]
  tile.s = tile.o + kRowTileMaxRows * tile.hd_pad;  // [rows, kKeyBlock]
  tile.m = tile.s + kRowTileMaxRows * kKeyBlock;    // [rows]
  tile.l = tile.m + kRowAlign;                      // [rows]
  tile.corr = tile.l + kRowAlign;                   // [rows]

  for (int64_t r = 0; r < rows; ++r) {
    const float* qr = tr.q(r);
    float* q = tile.q + r * tile.hd_pad;
    for (int64_t d = 0; d < tile.hd_pad; ++d) q[d] = d < hd ? qr[d] * op.q_scale : 0.0f;
  }
  std::fill(tile.o, tile.o + rows * tile.hd_pad, 0.0f);
  std::fill(tile.m, tile.m + rows, -std::numeric_limits<float>::infinity());
  std::fill(tile.l, tile.l + rows, 0.0f);

  for_each_key_block(op, seq, item.kv_head, tr.key_end(args.causal),
                     [&](int64_t key0, int64_t n, const float* const* k_rows, const float* const* v_rows) {
                       kernels.scores(tile, k_rows, n);
                       if (tr.crosses(args.causal, key0, n))
                         for (int64_t r = 0; r < rows; ++r)
                           for (int64_t t = std::max<int64_t>(0, tr.pos(r) + 1 - key0); t < n; ++t)
                             tile.s[r * kKeyBlock + t] = -std::numeric_limits<float>::infinity();
                       kernels.softmax(tile, n);
                       kernels.accumulate(tile, v_rows, n);
                     });

  for (int64_t r = 0; r < rows; ++r) {
    float* o = tr.out(r);
    const float inv_l = 1.0f / tile.l[r];
    for (int64_t d = 0; d < hd; ++d) o[d] = tile.o[r * tile.hd_pad + d] * inv_l;
  }
}

}  // namespace

size_t flash_scratch_floats(int64_t head_dim) {
  const auto hd = static_cast<size_t>(head_dim);
  return 2 * kTileRows * hd + kKeyBlock * kTileRows + 3 * kTileRows + 16;  // + 16: alignment slack
}

size_t flash_scratch_bytes(int64_t head_dim) { return flash_scratch_floats(head_dim) * sizeof(float); }

void flash_attention(const CpuContext& ctx, const AttentionArgs& args) {
  const int64_t n_heads = args.q.shape[1], n_kv_heads = args.kv.k.shape[2];
  const int64_t group = n_heads / n_kv_heads;
  const Operands op{reinterpret_cast<const float*>(args.q.data),
                    reinterpret_cast<const float*>(args.kv.k.data),
                    reinterpret_cast<const float*>(args.kv.v.data),
                    reinterpret_cast<float*>(args.out.data),
                    args.q.strides,
                    args.kv.k.strides,
                    args.kv.v.strides,
                    n_heads,
                    args.q.shape[2],
                    args.kv.k.shape[1],
                    static_cast<float>(static_cast<double>(args.scale) * std::numbers::log2e)};
  const std::vector<WorkItem> items = plan(args, n_kv_heads, group);
  // The one dispatch of this call: both tile forms' inner loops for ctx.isa.
  const FlashKernels column_kernels = flash_kernels(ctx.isa);
  const FlashRowKernels row_kernels = flash_row_kernels(ctx.isa);
  const size_t scratch_floats = flash_scratch_floats(op.head_dim);
  ctx.pool->parallel_for(
      static_cast<int64_t>(items.size()), 1,
      [&](int64_t begin, int64_t end) {
        float* scratch = thread_scratch(scratch_floats);
        for (int64_t i = begin; i < end; ++i) {
          if (items[i].n_tokens * items[i].n_heads <= kRowTileMaxRows)
            run_row_item(row_kernels, args, op, items[i], scratch);
          else
            run_column_item(column_kernels, args, op, items[i], scratch);
        }
      },
      Schedule::kStatic);
}

}  // namespace bf::cpu::attn
