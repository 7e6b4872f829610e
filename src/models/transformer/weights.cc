#include "models/transformer/weights.h"

#include <cstring>
#include <optional>

#include "batch_forge/core/error.h"
#include "ops/quantize.h"
#include "ops/reference.h"

namespace bf::transformer {
namespace {

constexpr uintptr_t kAlignment = 64;

class Binder {
 public:
  Binder(const ModelFile& file, Backend& backend, Weights& w, const LoadOptions& options)
      : file_(file), backend_(backend), w_(w), fuse_(options.fuse_projections) {
    if (!options.quant.empty()) {
      scheme_ = ops::quant_scheme_from_name(options.quant);
      if (!scheme_)
        throw Error(ErrorCode::kInvalidArgument, "model",
                    cat("unknown quantization '", options.quant, "' (known: q8_0, q4_0, nf4, fp8_e4m3)"));
    }
  }

  // An f32 vector parameter (norm weight or bias): the file's bytes when already f32 and aligned,
  // else widened into an owned buffer.
  ConstTensorView vector(const std::string& name) {
    const TensorInfo& t = file_.tensor(name);
    ConstTensorView v = file_.file().view(t);
    if (v.dtype == DType::kF32 && aligned(v)) return v;
    auto buffer = backend_.allocate(static_cast<size_t>(v.numel()) * sizeof(float));
    std::span<float> out(reinterpret_cast<float*>(buffer->data()), static_cast<size_t>(v.numel()));
    ConstTensorView row = v;
    row.shape = Shape{1, v.numel()};
    row.strides = Shape{v.numel(), 1};
    ops::dequantize_row(row, 0, out);
    return own(std::move(buffer), DType::kF32, {v.numel()});
  }

  std::optional<ConstTensorView> maybe_vector(const std::string& name) {
    if (!has(name)) return std::nullopt;
    return vector(name);
  }

  // A matmul weight [n, k]: as stored, or quantized with --quant when the rule of
  // `batch_forge quantize` allows it (float rows of whole blocks).
  LinearWeights linear(const std::string& prefix, bool bias) { return group({prefix}, bias, nullptr)[0]; }

  // Projections that read the same input ({query, key, value}, {gate, up}): each part bound as
  // usual, plus (when `fused` is given) `*fused`, one [Σ n_out, n_in] view over all of them when their rows sit back to
  // back — always when quantized here (one allocation for the group), and for a file's weights
  // when the file happens to store them adjacently (a `batch_forge quantize` output usually does).
  // A fused matmul quantizes the input once and streams one longer run of weights.
  std::vector<LinearWeights> group(const std::vector<std::string>& prefixes, bool bias, LinearWeights* fused) {
    std::vector<LinearWeights> parts;
    if (scheme_ && *scheme_ != ops::QuantScheme::kFp8E4M3 && all_quantizable(prefixes)) {
      parts = quantize_group(prefixes);
    } else {
      for (const std::string& p : prefixes) {
        LinearWeights l;
        l.weight = matrix(p + ".weight", &l.scale);
        parts.push_back(l);
      }
    }
    for (size_t i = 0; i < parts.size(); ++i) {
      if (bias) parts[i].bias = vector(prefixes[i] + ".bias");
      w_.matmul_bytes +=
          static_cast<int64_t>(*dtype_bytes(parts[i].weight.dtype, static_cast<uint64_t>(parts[i].weight.numel())));
      w_.matmul_params += parts[i].weight.numel();
    }
    if (fuse_ && fused) *fused = fuse(parts);
    return parts;
  }

  // `droppable`: a copy quantized here may be freed once packed (not the embedding table, which
  // the embedding op gathers from).
  ConstTensorView matrix(const std::string& name, ConstTensorView* scale, bool droppable = true) {
    const TensorInfo& t = file_.tensor(name);
    ConstTensorView v = file_.file().view(t);
    if (const TensorInfo* s = file_.scale_tensor(name)) *scale = vector_of(*s);
    const bool float_type = v.dtype == DType::kF32 || v.dtype == DType::kF16 || v.dtype == DType::kBF16;
    if (scheme_ && float_type && v.shape[1] % ops::quant_scheme_info(*scheme_).block == 0) {
      const ConstTensorView q = quantize(v, scale, droppable);
      file_.file().release(t);  // read once: its pages need not stay resident
      return q;
    }
    if (aligned(v)) return v;
    // A file written without alignment (by another tool): copy once rather than fault on loads.
    const size_t bytes = *dtype_bytes(v.dtype, static_cast<uint64_t>(v.numel()));
    auto buffer = backend_.allocate(bytes);
    std::memcpy(buffer->data(), v.data, bytes);
    return own(std::move(buffer), v.dtype, {v.shape[0], v.shape[1]});
  }

  // The embedding table: its type must be one the embedding op reads; fp8 is widened to f32.
  ConstTensorView embedding(const std::string& name, ConstTensorView* scale) {
    ConstTensorView v = matrix(name, scale, false);
    if (v.dtype != DType::kF8E4M3) return v;
    const int64_t n = v.shape[0], k = v.shape[1];
    auto buffer = backend_.allocate(static_cast<size_t>(n * k) * sizeof(float));
    auto* out = reinterpret_cast<float*>(buffer->data());
    const float* s = scale->data ? scale->as<const float>() : nullptr;
    for (int64_t r = 0; r < n; ++r) ops::dequantize_row(v, r, {out + r * k, static_cast<size_t>(k)}, s);
    *scale = {};
    return own(std::move(buffer), DType::kF32, {n, k});
  }

  bool has(const std::string& name) const {
    for (const TensorInfo* t : file_.tensors())
      if (t->name == name) return true;
    return false;
  }

 private:
  static bool aligned(const ConstTensorView& v) { return reinterpret_cast<uintptr_t>(v.data) % kAlignment == 0; }

  ConstTensorView vector_of(const TensorInfo& t) {
    ConstTensorView v = file_.file().view(t);
    if (aligned(v)) return v;
    auto buffer = backend_.allocate(t.nbytes());
    std::memcpy(buffer->data(), v.data, t.nbytes());
    return own(std::move(buffer), v.dtype, {v.numel()});
  }

  bool all_quantizable(const std::vector<std::string>& prefixes) const {
    for (const std::string& p : prefixes) {
      const TensorInfo& t = file_.tensor(p + ".weight");
      const bool float_type = t.dtype == DType::kF32 || t.dtype == DType::kF16 || t.dtype == DType::kBF16;
      if (!float_type || t.dims.size() != 2 || t.dims[1] % ops::quant_scheme_info(*scheme_).block != 0) return false;
    }
    return true;
  }

  // The parts quantized into consecutive rows of one buffer.
  std::vector<LinearWeights> quantize_group(const std::vector<std::string>& prefixes) {
    std::vector<ConstTensorView> src;
    int64_t rows = 0;
    for (const std::string& p : prefixes) {
      src.push_back(file_.file().view(file_.tensor(p + ".weight")));
      rows += src.back().shape[0];
    }
    const int64_t k = src[0].shape[1];
    const int64_t row_bytes = ops::quantized_row_bytes(*scheme_, k);
    const DType dtype = ops::quant_scheme_info(*scheme_).dtype;
    auto buffer = backend_.allocate(static_cast<size_t>(rows * row_bytes));
    std::byte* at = buffer->data();
    std::vector<LinearWeights> parts;
    std::vector<float> row(static_cast<size_t>(k));
    for (const ConstTensorView& v : src) {
      const int64_t n = v.shape[0];
      for (int64_t r = 0; r < n; ++r) {
        ops::dequantize_row(v, r, row);
        ops::quantize_row(*scheme_, row, {at + r * row_bytes, static_cast<size_t>(row_bytes)});
      }
      LinearWeights l;
      l.weight = ConstTensorView::contiguous({at, static_cast<size_t>(n * row_bytes)}, dtype, Shape{n, k});
      parts.push_back(l);
      at += n * row_bytes;
    }
    w_.quantized.push_back(std::move(buffer));
    for (const std::string& p : prefixes) file_.file().release(file_.tensor(p + ".weight"));
    return parts;
  }

  LinearWeights fuse(const std::vector<LinearWeights>& parts) {
    const ConstTensorView& first = parts[0].weight;
    int64_t rows = 0;
    const std::byte* expect = first.data;
    for (const LinearWeights& l : parts) {
      const ConstTensorView& w = l.weight;
      if (w.dtype != first.dtype || w.shape[1] != first.shape[1] || w.data != expect || l.scale.data ||
          !w.is_contiguous())
        return {};
      expect += *dtype_bytes(w.dtype, static_cast<uint64_t>(w.numel()));
      rows += w.shape[0];
    }
    LinearWeights f;
    f.weight = ConstTensorView::contiguous({first.data, static_cast<size_t>(expect - first.data)}, first.dtype,
                                           Shape{rows, first.shape[1]});
    if (parts[0].bias.data) {
      auto buffer = backend_.allocate(static_cast<size_t>(rows) * sizeof(float));
      auto* out = reinterpret_cast<float*>(buffer->data());
      for (const LinearWeights& l : parts) {
        std::memcpy(out, l.bias.data, static_cast<size_t>(l.bias.numel()) * sizeof(float));
        out += l.bias.numel();
      }
      f.bias = own(std::move(buffer), DType::kF32, {rows});
    }
    return f;
  }

  ConstTensorView quantize(const ConstTensorView& v, ConstTensorView* scale, bool droppable) {
    const int64_t n = v.shape[0], k = v.shape[1];
    const int64_t row_bytes = ops::quantized_row_bytes(*scheme_, k);
    const ops::QuantSchemeInfo& info = ops::quant_scheme_info(*scheme_);
    auto buffer = backend_.allocate(static_cast<size_t>(n * row_bytes));
    std::unique_ptr<Buffer> scales;
    if (*scheme_ == ops::QuantScheme::kFp8E4M3) scales = backend_.allocate(static_cast<size_t>(n) * sizeof(float));
    std::vector<float> row(static_cast<size_t>(k));
    for (int64_t r = 0; r < n; ++r) {
      ops::dequantize_row(v, r, row);  // f16/bf16 → f32 exactly; f32 copied
      const float s =
          ops::quantize_row(*scheme_, row, {buffer->data() + r * row_bytes, static_cast<size_t>(row_bytes)});
      if (scales) reinterpret_cast<float*>(scales->data())[r] = s;
    }
    if (scales) *scale = own(std::move(scales), DType::kF32, {n});
    return own(std::move(buffer), info.dtype, {n, k}, droppable);
  }

  ConstTensorView own(std::unique_ptr<Buffer> buffer, DType dtype, std::initializer_list<int64_t> dims,
                      bool quantized_matmul = false) {
    const Shape shape(dims);
    ConstTensorView v = ConstTensorView::contiguous(
        {buffer->data(), static_cast<size_t>(*dtype_bytes(dtype, static_cast<uint64_t>(shape.numel())))}, dtype, shape);
    (quantized_matmul ? w_.quantized : w_.owned).push_back(std::move(buffer));
    return v;
  }

  const ModelFile& file_;
  Backend& backend_;
  Weights& w_;
  std::optional<ops::QuantScheme> scheme_;
  bool fuse_;
};

// Every matmul weight view of the model, the parts of fused groups included.
template <typename W, typename Fn>  // W: Weights or const Weights
void for_each_linear(W& w, Fn&& fn) {
  for (auto& lw : w.layers)
    for (auto* l : {&lw.query, &lw.key, &lw.value, &lw.output, &lw.gate, &lw.up, &lw.down, &lw.qkv, &lw.gate_up}) fn(*l);
  fn(w.head);
}

// The matmuls the forward pass runs: a fused group instead of its parts.
template <typename Fn>
void for_each_forward_linear(Weights& w, Fn&& fn) {
  for (LayerWeights& lw : w.layers) {
    if (lw.qkv.present()) {
      fn(lw.qkv);
    } else {
      fn(lw.query), fn(lw.key), fn(lw.value);
    }
    fn(lw.output);
    if (lw.gate_up.present()) {
      fn(lw.gate_up);
    } else {
      fn(lw.gate), fn(lw.up);
    }
    fn(lw.down);
  }
  fn(w.head);
}

// Each of them prepared by the backend.
void pack(Weights& w, Backend& backend) {
  for_each_forward_linear(w, [&](LinearWeights& l) {
    if (l.weight.data) l.packed = backend.pack_linear_weight(l.weight);
  });
}

// Frees the natural copies of weights quantized while loading that are packed: a quantized
// buffer goes when no matmul the forward runs unpacked (nor the embedding) reads it — the parts
// of a fused group are never read. The views into it keep shape and dtype with null data. A
// file's own quantized weights are the mapping and cost nothing; they stay.
void drop_natural_copies(Weights& w) {
  auto inside = [](const std::unique_ptr<Buffer>& b, const ConstTensorView& v) {
    const auto at = reinterpret_cast<uintptr_t>(v.data), begin = reinterpret_cast<uintptr_t>(b->data());
    return at >= begin && at < begin + b->size();
  };
  for (std::unique_ptr<Buffer>& b : w.quantized) {
    bool read = inside(b, w.embed);
    for_each_forward_linear(w, [&](const LinearWeights& l) { read = read || (!l.packed && inside(b, l.weight)); });
    if (read) continue;
    for_each_linear(w, [&](LinearWeights& l) {
      if (inside(b, l.weight)) l.weight.data = nullptr;
    });
    b.reset();
  }
  std::erase(w.quantized, nullptr);
}

}  // namespace

Weights Weights::bind(const ModelFile& file, const Config& c, Backend& backend, const LoadOptions& options) {
  Weights w;
  Binder b(file, backend, w, options);
  auto norm = [&](const std::string& prefix) {
    NormWeights n;
    n.weight = b.vector(prefix + ".weight");
    if (auto bias = b.maybe_vector(prefix + ".bias")) n.bias = *bias;
    return n;
  };
  ConstTensorView embed_scale;
  w.embed = b.embedding("embed.weight", &embed_scale);
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string l = cat("layers.", i, ".");
    LayerWeights lw;
    lw.attn_norm = norm(l + "attn_norm");
    const auto qkv = b.group({l + "attn.query_proj", l + "attn.key_proj", l + "attn.value_proj"}, c.qkv_bias, &lw.qkv);
    lw.query = qkv[0], lw.key = qkv[1], lw.value = qkv[2];
    lw.output = b.linear(l + "attn.output_proj", c.out_bias);
    lw.mlp_norm = norm(l + "mlp_norm");
    if (c.mlp == MlpKind::kSwiGlu) {
      const auto gate_up = b.group({l + "mlp.gate_proj", l + "mlp.up_proj"}, c.mlp_bias, &lw.gate_up);
      lw.gate = gate_up[0], lw.up = gate_up[1];
    } else {
      lw.up = b.linear(l + "mlp.up_proj", c.mlp_bias);
    }
    lw.down = b.linear(l + "mlp.down_proj", c.mlp_bias);
    w.layers.push_back(lw);
  }
  w.final_norm = norm("final_norm");
  if (c.tie_embeddings) {
    w.head.weight = w.embed;
    w.head.scale = embed_scale;
    w.matmul_bytes += static_cast<int64_t>(*dtype_bytes(w.embed.dtype, static_cast<uint64_t>(w.embed.numel())));
    w.matmul_params += w.embed.numel();
  } else {
    w.head = b.linear("lm_head", false);
  }
  if (options.pack_weights) {
    pack(w, backend);
    drop_natural_copies(w);
  }
  return w;
}

int64_t Weights::memory_bytes() const {
  size_t bytes = 0;
  for (const auto& b : owned) bytes += b->size();
  for (const auto& b : quantized) bytes += b->size();
  for_each_linear(*this, [&](const LinearWeights& l) {
    if (l.packed) bytes += l.packed->bytes();
  });
  return static_cast<int64_t>(bytes);
}

}  // namespace bf::transformer
