// One forward of the transformer family over a batch of sequences. Follow one token: embed →
// per layer [norm → q/k/v projections → RoPE at its position → K/V written into its page →
// attention over its pages → output projection + residual → norm → MLP + residual] → final norm
// → output head, for the rows whose logits are wanted.
#include "models/transformer/model.h"

#include <cmath>
#include <cstring>

#include "batch_forge/core/error.h"
#include "models/transformer/config.h"
#include "models/transformer/weights.h"

namespace bf::transformer {
namespace {

// Grow-only activation buffers from the backend, so a steady stream of forwards allocates
// nothing once the largest batch has been seen.
class Scratch {
 public:
  float* get(Backend& backend, size_t slot, int64_t floats) {
    if (slot >= buffers_.size()) buffers_.resize(slot + 1);
    auto& b = buffers_[slot];
    const size_t bytes = static_cast<size_t>(std::max<int64_t>(floats, 1)) * sizeof(float);
    if (!b || b->size() < bytes) b = backend.allocate(bytes + bytes / 2);
    return reinterpret_cast<float*>(b->data());
  }

 private:
  std::vector<std::unique_ptr<Buffer>> buffers_;
};

ConstTensorView cview(const float* p, std::initializer_list<int64_t> dims) {
  const Shape s(dims);
  return ConstTensorView::contiguous(
      {reinterpret_cast<const std::byte*>(p), static_cast<size_t>(s.numel()) * sizeof(float)}, DType::kF32, s);
}
TensorView view(float* p, std::initializer_list<int64_t> dims) {
  const Shape s(dims);
  return TensorView::contiguous({reinterpret_cast<std::byte*>(p), static_cast<size_t>(s.numel()) * sizeof(float)},
                                DType::kF32, s);
}

// f32 with explicit strides, in floats (columns of a wider matrix: rows `ld` floats apart).
TensorView strided(float* p, Shape shape, Shape strides) {
  TensorView v;
  v.data = reinterpret_cast<std::byte*>(p);
  v.dtype = DType::kF32;
  v.shape = shape;
  v.strides = strides;
  return v;
}
ConstTensorView readonly(const TensorView& v) { return {v.data, v.dtype, v.shape, v.strides}; }

class Model final : public LanguageModel {
 public:
  Model(const ModelFile& file, Backend& backend, const LoadOptions& options)
      : config_(Config::parse(file.config(), file.path())),
        backend_(backend),
        weights_(Weights::bind(file, config_, backend, options)),
        kv_layout_{config_.n_layers, config_.n_kv_heads, config_.head_dim} {}

  const KvLayout& kv_layout() const override { return kv_layout_; }
  int64_t vocab_size() const override { return config_.vocab_size; }
  int64_t max_seq_len() const override { return config_.max_seq_len; }
  std::string describe() const override {
    return cat(
        "transformer: ", config_.describe(), "; weights ",
        dtype_name(weights_.layers.empty() ? weights_.head.weight.dtype : weights_.layers[0].query.weight.dtype));
  }
  int64_t weight_bytes_per_token() const override {
    const int64_t row = static_cast<int64_t>(*dtype_bytes(weights_.embed.dtype, static_cast<uint64_t>(config_.dim)));
    return weights_.matmul_bytes + row;
  }

  int64_t matmul_flops_per_token() const override { return 2 * weights_.matmul_params; }
  int64_t weight_memory_bytes() const override { return weights_.memory_bytes(); }

  void forward(std::span<const SeqInput> batch, const KvCacheView& kv, std::vector<float>& logits) override;

 private:
  void check(std::span<const SeqInput> batch, const KvCacheView& kv) const;
  void linear(const LinearWeights& w, const float* x, int64_t m, int64_t k, float* y, int64_t n) {
    LinearArgs a;
    a.x = cview(x, {m, k});
    a.weight = w.weight;
    a.scale = w.scale;
    a.bias = w.bias;
    a.packed = w.packed.get();
    a.y = view(y, {m, n});
    backend_.linear(a);
  }
  void norm(const NormWeights& w, const float* x, int64_t m, float* y) {
    const auto eps = static_cast<float>(config_.norm_eps);
    if (config_.norm == NormKind::kRms) {
      backend_.rms_norm({cview(x, {m, config_.dim}), w.weight, w.bias, eps, view(y, {m, config_.dim})});
    } else {
      backend_.layer_norm({cview(x, {m, config_.dim}), w.weight, w.bias, eps, view(y, {m, config_.dim})});
    }
  }
  void add_into(float* x, const float* d, int64_t n) { backend_.add({cview(x, {n}), cview(d, {n}), view(x, {n})}); }

  Config config_;
  Backend& backend_;
  Weights weights_;
  KvLayout kv_layout_;
  Scratch scratch_;
  std::vector<int32_t> ids_, positions_;
  std::vector<int64_t> slots_;  // per row: its KV slot, page · page_size + offset
  std::vector<AttentionSeq> attn_seqs_;
};

void Model::check(std::span<const SeqInput> batch, const KvCacheView& kv) const {
  const Shape& ks = kv.k.shape;
  if (ks.rank() != 5 || ks[0] != config_.n_layers || ks[3] != config_.n_kv_heads || ks[4] != config_.head_dim ||
      ks[2] != kv.page_size || kv.v.shape != ks || kv.k.dtype != DType::kF32 || kv.v.dtype != DType::kF32)
    throw Error(ErrorCode::kInvalidArgument, "model",
                cat("KV cache of shape ", ks.to_string(), " does not fit the model (want [", config_.n_layers,
                    ", pages, ", kv.page_size, ", ", config_.n_kv_heads, ", ", config_.head_dim, "] f32)"));
  const int64_t n_pages = ks[1];
  for (size_t s = 0; s < batch.size(); ++s) {
    const SeqInput& in = batch[s];
    const int64_t end = in.n_past + static_cast<int64_t>(in.tokens.size());
    if (in.tokens.empty() || in.n_past < 0)
      throw Error(ErrorCode::kInvalidArgument, "model", cat("sequence ", s, " of the batch has no new tokens"));
    if (end > config_.max_seq_len)
      throw Error(
          ErrorCode::kInvalidArgument, "model",
          cat("sequence ", s, " would reach ", end, " tokens, past the model's context of ", config_.max_seq_len));
    if (static_cast<int64_t>(in.pages.size()) * kv.page_size < end)
      throw Error(
          ErrorCode::kInvalidArgument, "model",
          cat("sequence ", s, " has ", in.pages.size(), " KV pages of ", kv.page_size, " tokens for ", end, " tokens"));
    for (int32_t p : in.pages)
      if (p < 0 || p >= n_pages)
        throw Error(ErrorCode::kInvalidArgument, "model", cat("sequence ", s, " names KV page ", p, " of ", n_pages));
    for (int32_t t : in.tokens)
      if (t < 0 || t >= config_.vocab_size)
        throw Error(ErrorCode::kInvalidArgument, "model",
                    cat("token id ", t, " is outside the vocabulary [0, ", config_.vocab_size, ")"));
  }
}

void Model::forward(std::span<const SeqInput> batch, const KvCacheView& kv, std::vector<float>& logits) {
  check(batch, kv);
  const Config& c = config_;
  const int64_t dim = c.dim, hd = c.head_dim, nq = c.n_heads * hd, nkv = c.n_kv_heads * hd;
  const int64_t ffn = c.hidden_dim, vocab = c.vocab_size;

  // Rows of the batch: every new token of every sequence, in order.
  ids_.clear(), positions_.clear(), slots_.clear(), attn_seqs_.clear();
  int64_t n_out = 0;
  for (const SeqInput& in : batch) {
    const auto q_len = static_cast<int64_t>(in.tokens.size());
    attn_seqs_.push_back({static_cast<int64_t>(ids_.size()), q_len, in.n_past + q_len, in.pages});
    for (int64_t j = 0; j < q_len; ++j) {
      const int64_t pos = in.n_past + j;
      ids_.push_back(in.tokens[j]);
      positions_.push_back(static_cast<int32_t>(pos));
      slots_.push_back(in.pages[static_cast<size_t>(pos / kv.page_size)] * kv.page_size + pos % kv.page_size);
    }
    n_out += in.all_logits ? q_len : 1;
  }
  const auto rows = static_cast<int64_t>(ids_.size());

  float* x = scratch_.get(backend_, 0, rows * dim);      // [rows, dim] residual stream
  float* h = scratch_.get(backend_, 1, rows * dim);      // [rows, dim] normed / branch output
  float *q = nullptr, *k = nullptr, *v = nullptr;        // [rows, heads, head_dim], set per layer
  float* att = scratch_.get(backend_, 5, rows * nq);     // [rows, n_heads, head_dim]
  float* up = scratch_.get(backend_, 7, rows * ffn);     // [rows, hidden]
  float* last = scratch_.get(backend_, 8, n_out * dim);  // [n_out, dim] rows whose logits are wanted

  backend_.embedding({weights_.embed, ids_.data(), rows, view(x, {rows, dim})});

  const int64_t n_pages = kv.k.shape[1], page = kv.page_size;
  const int64_t layer_floats = n_pages * page * nkv;  // one layer's K (or V) in the pool
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const LayerWeights& w = weights_.layers[l];
    norm(w.attn_norm, x, rows, h);
    // q, k, v: rows `ld` floats apart — the columns of one fused matmul's output, read in place by
    // RoPE, the K/V copy and attention, or three matmuls' own outputs.
    int64_t ld_q = nq, ld_kv = nkv;
    if (w.qkv.present()) {
      float* qkv = scratch_.get(backend_, 9, rows * (nq + 2 * nkv));  // [rows, q | k | v]
      linear(w.qkv, h, rows, dim, qkv, nq + 2 * nkv);
      q = qkv, k = qkv + nq, v = qkv + nq + nkv;
      ld_q = ld_kv = nq + 2 * nkv;
    } else {
      q = scratch_.get(backend_, 2, rows * nq), k = scratch_.get(backend_, 3, rows * nkv);
      v = scratch_.get(backend_, 4, rows * nkv);
      linear(w.query, h, rows, dim, q, nq);
      linear(w.key, h, rows, dim, k, nkv);
      linear(w.value, h, rows, dim, v, nkv);
    }
    const auto theta = static_cast<float>(c.rope_theta);
    const TensorView qv = strided(q, {rows, c.n_heads, hd}, {ld_q, hd, 1});
    const TensorView k_rows = strided(k, {rows, c.n_kv_heads, hd}, {ld_kv, hd, 1});
    if (w.qkv.present()) {  // k's heads follow q's in each row: one rotation (one table per row) for both
      backend_.rope({strided(q, {rows, c.n_heads + c.n_kv_heads, hd}, {ld_q, hd, 1}), positions_.data(), theta});
    } else {
      backend_.rope({qv, positions_.data(), theta});
      backend_.rope({k_rows, positions_.data(), theta});
    }

    // K/V of each new token into its slot of this layer's pages.
    KvWriteArgs w_kv;
    w_kv.k = readonly(k_rows);
    w_kv.v = readonly(strided(v, {rows, c.n_kv_heads, hd}, {ld_kv, hd, 1}));
    w_kv.slots = slots_;
    w_kv.k_cache = view(reinterpret_cast<float*>(kv.k.data) + l * layer_floats, {n_pages, page, c.n_kv_heads, hd});
    w_kv.v_cache = view(reinterpret_cast<float*>(kv.v.data) + l * layer_floats, {n_pages, page, c.n_kv_heads, hd});
    backend_.kv_write(w_kv);
    AttentionArgs a;
    a.q = readonly(qv);
    a.kv.k = readonly(w_kv.k_cache);
    a.kv.v = readonly(w_kv.v_cache);
    a.seqs = attn_seqs_;
    a.causal = true;
    a.scale = 1.0f / std::sqrt(static_cast<float>(hd));
    a.out = view(att, {rows, c.n_heads, hd});
    backend_.attention(a);
    linear(w.output, att, rows, nq, h, dim);
    add_into(x, h, rows * dim);

    norm(w.mlp_norm, x, rows, h);
    if (c.mlp == MlpKind::kSwiGlu) {
      if (w.gate_up.present()) {
        // silu_mul reads the two halves of each row in place.
        float* gu = scratch_.get(backend_, 10, rows * 2 * ffn);  // [rows, 2·hidden]
        linear(w.gate_up, h, rows, dim, gu, 2 * ffn);
        backend_.silu_mul({readonly(strided(gu, {rows, ffn}, {2 * ffn, 1})),
                           readonly(strided(gu + ffn, {rows, ffn}, {2 * ffn, 1})), view(up, {rows, ffn})});
      } else {
        float* gate = scratch_.get(backend_, 6, rows * ffn);  // [rows, hidden]
        linear(w.gate, h, rows, dim, gate, ffn);
        linear(w.up, h, rows, dim, up, ffn);
        backend_.silu_mul({cview(gate, {rows, ffn}), cview(up, {rows, ffn}), view(up, {rows, ffn})});
      }
    } else {
      linear(w.up, h, rows, dim, up, ffn);
      backend_.unary({UnaryOp::kGeluTanh, cview(up, {rows, ffn}), view(up, {rows, ffn})});
    }
    linear(w.down, up, rows, ffn, h, dim);
    add_into(x, h, rows * dim);
  }

  // Only the rows whose logits are wanted go through the head (vocab × dim per row).
  int64_t o = 0;
  for (size_t s = 0; s < batch.size(); ++s) {
    const AttentionSeq& as = attn_seqs_[s];
    const int64_t first = batch[s].all_logits ? as.q_begin : as.q_begin + as.q_len - 1;
    const int64_t count = as.q_begin + as.q_len - first;
    std::memcpy(last + o * dim, x + first * dim, static_cast<size_t>(count * dim) * sizeof(float));
    o += count;
  }
  norm(weights_.final_norm, last, n_out, last);
  logits.resize(static_cast<size_t>(n_out * vocab));
  linear(weights_.head, last, n_out, dim, logits.data(), vocab);
}

}  // namespace

std::unique_ptr<LanguageModel> load(const ModelFile& file, Backend& backend, const LoadOptions& options) {
  return std::make_unique<Model>(file, backend, options);
}

}  // namespace bf::transformer
