#include "models/transformer/config.h"

#include <set>

#include "batch_forge/core/error.h"

namespace bf::transformer {
namespace {

// Reads the fields of one JSON object, each once, with messages that name the field.
class FieldReader {
 public:
  FieldReader(const nlohmann::json& json, std::string_view source) : json_(json), source_(source) {}

  int64_t integer(const char* name, int64_t min, std::optional<int64_t> fallback = std::nullopt) {
    const nlohmann::json* v = get(name, fallback.has_value());
    if (!v) return *fallback;
    if (!v->is_number_integer()) fail(name, cat("is ", v->dump(), "; expected an integer"));
    const int64_t x = v->get<int64_t>();
    if (x < min) fail(name, cat("is ", x, "; expected at least ", min));
    return x;
  }

  double positive_number(const char* name, std::optional<double> fallback = std::nullopt) {
    const nlohmann::json* v = get(name, fallback.has_value());
    if (!v) return *fallback;
    if (!v->is_number()) fail(name, cat("is ", v->dump(), "; expected a number"));
    const double x = v->get<double>();
    if (!(x > 0)) fail(name, cat("is ", x, "; expected a positive number"));
    return x;
  }

  bool boolean(const char* name, bool fallback) {
    const nlohmann::json* v = get(name, true);
    if (!v) return fallback;
    if (!v->is_boolean()) fail(name, cat("is ", v->dump(), "; expected true or false"));
    return v->get<bool>();
  }

  std::string choice(const char* name, std::initializer_list<std::string_view> options) {
    const nlohmann::json* v = get(name, false);
    std::string allowed;
    for (auto o : options) allowed += (allowed.empty() ? "\"" : " or \"") + std::string(o) + "\"";
    if (v->is_string())
      for (auto o : options)
        if (v->get<std::string>() == o) return std::string(o);
    fail(name, cat("is ", v->dump(), "; expected ", allowed));
  }

  [[noreturn]] void fail(const char* name, const std::string& rule) const {
    throw Error(ErrorCode::kInvalidFile, "config", cat(source_, ": transformer config field '", name, "' ", rule));
  }

  // Fields present in the JSON that nobody read.
  void refuse_unknown() const {
    for (const auto& [key, value] : json_.items())
      if (!seen_.contains(key))
        throw Error(ErrorCode::kInvalidFile, "config",
                    cat(source_, ": transformer config has unknown field '", key, "' (see docs/model-format.md)"));
  }

 private:
  const nlohmann::json* get(const char* name, bool optional) {
    seen_.insert(name);
    const auto it = json_.find(name);
    if (it == json_.end()) {
      if (optional) return nullptr;
      throw Error(ErrorCode::kInvalidFile, "config",
                  cat(source_, ": transformer config is missing field '", name, "'"));
    }
    return &*it;
  }

  const nlohmann::json& json_;
  std::string_view source_;
  std::set<std::string, std::less<>> seen_;
};

}  // namespace

Config Config::parse(const nlohmann::json& json, std::string_view source) {
  if (!json.is_object())
    throw Error(ErrorCode::kInvalidFile, "config", cat(source, ": transformer config is not a JSON object"));
  FieldReader r(json, source);
  Config c;
  c.vocab_size = r.integer("vocab_size", 1);
  c.dim = r.integer("dim", 1);
  c.n_layers = r.integer("n_layers", 0);
  c.n_heads = r.integer("n_heads", 1);
  c.n_kv_heads = r.integer("n_kv_heads", 1);
  c.head_dim = r.integer("head_dim", 1);
  c.hidden_dim = r.integer("hidden_dim", 1);
  c.norm = r.choice("norm", {"rms", "layer"}) == "rms" ? NormKind::kRms : NormKind::kLayer;
  c.norm_eps = r.positive_number("norm_eps");
  c.mlp = r.choice("mlp", {"swiglu", "gelu"}) == "swiglu" ? MlpKind::kSwiGlu : MlpKind::kGelu;
  c.qkv_bias = r.boolean("qkv_bias", false);
  c.out_bias = r.boolean("out_bias", false);
  c.mlp_bias = r.boolean("mlp_bias", false);
  c.tie_embeddings = r.boolean("tie_embeddings", false);
  c.rope_theta = r.positive_number("rope_theta", 10000.0);
  c.max_seq_len = r.integer("max_seq_len", 1);
  r.refuse_unknown();

  if (c.n_heads % c.n_kv_heads != 0)
    r.fail("n_kv_heads", cat("is ", c.n_kv_heads, "; it must divide n_heads = ", c.n_heads));
  if (c.head_dim % 2 != 0) r.fail("head_dim", cat("is ", c.head_dim, "; rotate-half RoPE needs an even head_dim"));
  // Products that size tensors must fit comfortably in int64.
  constexpr int64_t kMaxDim = int64_t{1} << 31;
  for (auto [name, v] : {std::pair{"vocab_size", c.vocab_size},
                         {"dim", c.dim},
                         {"hidden_dim", c.hidden_dim},
                         {"n_heads", c.n_heads * c.head_dim},
                         {"n_layers", c.n_layers}})
    if (v > kMaxDim) r.fail(name, cat("is ", v, "; larger than this build supports"));
  return c;
}

std::vector<ExpectedTensor> Config::expected_tensors() const {
  const std::vector<DType> float_types = {DType::kF32, DType::kF16, DType::kBF16};
  // Matmul weights and embeddings may also be stored quantized (docs/quantization.md).
  const std::vector<DType> weight_types = {DType::kF32,  DType::kF16, DType::kBF16,  DType::kQ8_0,
                                           DType::kQ4_0, DType::kNF4, DType::kF8E4M3};
  const int64_t q = n_heads * head_dim, kv = n_kv_heads * head_dim;
  std::vector<ExpectedTensor> out;
  auto add = [&](std::string name, std::vector<int64_t> dims, const std::vector<DType>* types = nullptr) {
    out.push_back({std::move(name), std::move(dims), types ? *types : float_types});
  };
  auto linear = [&](const std::string& prefix, int64_t n_out, int64_t n_in, bool bias) {
    add(prefix + ".weight", {n_out, n_in}, &weight_types);  // Equinox Linear: (out, in)
    if (bias) add(prefix + ".bias", {n_out});
  };
  auto norm_params = [&](const std::string& prefix) {
    add(prefix + ".weight", {dim});
    if (norm == NormKind::kLayer) add(prefix + ".bias", {dim});
  };

  add("embed.weight", {vocab_size, dim}, &weight_types);
  for (int64_t i = 0; i < n_layers; ++i) {
    const std::string l = cat("layers.", i, ".");
    norm_params(l + "attn_norm");
    linear(l + "attn.query_proj", q, dim, qkv_bias);
    linear(l + "attn.key_proj", kv, dim, qkv_bias);
    linear(l + "attn.value_proj", kv, dim, qkv_bias);
    linear(l + "attn.output_proj", dim, q, out_bias);
    norm_params(l + "mlp_norm");
    if (mlp == MlpKind::kSwiGlu) linear(l + "mlp.gate_proj", hidden_dim, dim, mlp_bias);
    linear(l + "mlp.up_proj", hidden_dim, dim, mlp_bias);
    linear(l + "mlp.down_proj", dim, hidden_dim, mlp_bias);
  }
  norm_params("final_norm");
  if (!tie_embeddings) add("lm_head.weight", {vocab_size, dim}, &weight_types);
  return out;
}

std::string Config::describe() const {
  return cat(n_layers, " layers, dim ", dim, ", ", n_heads, " heads (", n_kv_heads, " kv) x ", head_dim, ", mlp ",
             mlp == MlpKind::kSwiGlu ? "swiglu " : "gelu ", hidden_dim, ", ", norm == NormKind::kRms ? "rms" : "layer",
             "norm, vocab ", vocab_size, ", context ", max_seq_len, tie_embeddings ? ", tied embeddings" : "");
}

}  // namespace bf::transformer
