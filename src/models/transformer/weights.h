// The transformer's weights, bound by PyTree key path (docs/model-format.md). Matmul weights and
// the embedding are zero-copy views into the mapped file unless LoadOptions::quant asks for a
// conversion; norm parameters and biases in f16/bf16 are widened to f32 once, here, because the
// norm and add ops take f32. With LoadOptions::pack_weights the backend also prepares each q8_0 /
// q4_0 matmul it has a packed form for (docs/cpu-linear.md), beside the view.
#pragma once

#include <memory>
#include <vector>

#include "batch_forge/backends/backend.h"
#include "batch_forge/io/model_file.h"
#include "batch_forge/models/language_model.h"
#include "models/transformer/config.h"

namespace bf::transformer {

struct LinearWeights {
  ConstTensorView weight;  // [n_out, n_in] (Equinox's (out, in)), any weight type of the backend
  ConstTensorView scale;   // [n_out] f32 for f8_e4m3 weights, else empty
  ConstTensorView bias;    // [n_out] f32, or empty
  // The backend's prepared form of `weight` (LoadOptions::pack_weights), passed beside it to every
  // call; null where the backend has none for its type. A weight quantized while loading keeps
  // only this form: its view's data is then null (shape and dtype stay).
  std::shared_ptr<const PackedWeight> packed;

  bool present() const { return weight.data != nullptr || packed != nullptr; }
};

struct NormWeights {
  ConstTensorView weight;  // [dim] f32
  ConstTensorView bias;    // [dim] f32 (LayerNorm), or empty
};

struct LayerWeights {
  NormWeights attn_norm;
  LinearWeights query, key, value, output;  // [q, dim], [kv, dim], [kv, dim], [dim, q]
  NormWeights mlp_norm;
  LinearWeights gate, up, down;  // [hidden, dim] (gate: swiglu only), [hidden, dim], [dim, hidden]
  // The same weights as one matmul where they lie back to back (Binder::group); not present()
  // otherwise. When it is, the forward uses it and not the parts.
  LinearWeights qkv;      // [q + 2·kv, dim]
  LinearWeights gate_up;  // [2·hidden, dim] (swiglu)
};

struct Weights {
  ConstTensorView embed;  // [vocab, dim]: f32, f16, bf16, q8_0, q4_0 or nf4 (the embedding op's types)
  std::vector<LayerWeights> layers;
  NormWeights final_norm;
  LinearWeights head;  // [vocab, dim]: lm_head, or the embedding table when tied

  std::vector<std::unique_ptr<Buffer>> owned;  // converted tensors the views above point into
  // Matmul weights quantized while loading (--quant), in the natural block layout: freed once
  // packed (the packed form is then their only copy), kept where the backend packs nothing.
  std::vector<std::unique_ptr<Buffer>> quantized;
  int64_t matmul_bytes = 0;                    // bytes of every matmul weight (the head once)
  int64_t matmul_params = 0;                   // their elements: 2 × this = matmul FLOPs per token

  static Weights bind(const ModelFile& file, const Config& config, Backend& backend, const LoadOptions& options);
  // Bytes of `owned`, `quantized` and the packed weights (LanguageModel::weight_memory_bytes).
  int64_t memory_bytes() const;
};

}  // namespace bf::transformer
