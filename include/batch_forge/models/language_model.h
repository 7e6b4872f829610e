// A loaded language model: the family's forward pass over a batch of sequences, written once
// against backend ops. The runtime (src/runtime/) owns the per-sequence state (the paged KV cache
// of kv_cache.h) and hands each forward the page tables; the model reads and writes K/V only
// through those pages.
//
// One forward takes several sequences at once, each with its own new tokens: a whole prompt
// (prefill), one decode token, or a chunk of a longer prompt, mixed freely. Their rows go
// through every projection together (one GEMM, not one GEMV per sequence); attention keeps them
// apart. A sequence's logits never depend on which other sequences share its batch.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "batch_forge/backends/backend.h"
#include "batch_forge/core/tensor.h"
#include "batch_forge/io/model_file.h"

namespace bf {

// What a family keeps per token of context: K and V of n_kv_heads × head_dim (f32) per layer.
struct KvLayout {
  int64_t n_layers = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t bytes_per_token() const { return 2 * n_layers * n_kv_heads * head_dim * int64_t{sizeof(float)}; }
};

// The pool's storage as the model sees it. Page p of layer l holds tokens [p·page_size, …) of
// whichever sequence owns p: k/v[l, p, slot, kv_head, :].
struct KvCacheView {
  TensorView k;  // [n_layers, n_pages, page_size, n_kv_heads, head_dim] f32
  TensorView v;  // [n_layers, n_pages, page_size, n_kv_heads, head_dim] f32
  int64_t page_size = 0;
};

// One sequence's part of a batched forward.
struct SeqInput {
  std::span<const int32_t> tokens;  // [q_len ≥ 1] new tokens, at positions n_past … n_past + q_len − 1
  int64_t n_past = 0;               // tokens of this sequence already in its pages
  std::span<const int32_t> pages;   // page table covering at least n_past + q_len tokens
  bool all_logits = false;          // logits for every new token (parity, perplexity); else the last only
};

struct LoadOptions {
  // Quantize the float matmul weights (and the embedding) while loading: "q8_0", "q4_0", "nf4",
  // "fp8_e4m3", or empty to run the weights as stored. Same rule and bytes as `batch_forge quantize`.
  std::string quant;
  // Run projections of the same input (q/k/v, gate/up) as one matmul where their weights lie back
  // to back (always after `quant`). Off only to compare the two paths.
  bool fuse_projections = true;
  // Let the backend prepare the q8_0 / q4_0 matmul weights (and the output head) for its kernels
  // once, here (Backend::pack_linear_weight). On the CPU the packed kernels give each row of a
  // batch the bits it has alone, and decode reads the weights at a higher share of the memory
  // bandwidth. Costs one more copy of those weights. Off only to compare the two paths.
  bool pack_weights = true;
};

class LanguageModel {
 public:
  virtual ~LanguageModel() = default;

  virtual const KvLayout& kv_layout() const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual int64_t max_seq_len() const = 0;
  virtual std::string describe() const = 0;
  // Bytes of weights one decode step reads (every matmul weight and one embedding row; with tied
  // embeddings the table once, as the output head): the numerator of the decode roofline.
  virtual int64_t weight_bytes_per_token() const = 0;
  // Multiply-adds × 2 of the matmuls per token (attention excluded).
  virtual int64_t matmul_flops_per_token() const = 0;
  // Bytes of weights the model holds in memory of its own, beside the mapped file: tensors
  // converted or quantized while loading, and the backend's packed copies.
  virtual int64_t weight_memory_bytes() const = 0;

  // Runs the new tokens of every sequence in `batch`, writing their K/V into their pages.
  // logits: [Σ (all_logits ? q_len : 1), vocab] f32, sequences in batch order; resized here.
  // Throws Error(kInvalidArgument, "model") for a token id out of range, a position past
  // max_seq_len or a page table too short — before anything is written.
  virtual void forward(std::span<const SeqInput> batch, const KvCacheView& kv, std::vector<float>& logits) = 0;
};

// Builds the family's model over an opened, validated file (open_model). Weights are zero-copy
// views into the mapping unless they are converted (f16/bf16 norm parameters, --quant).
// Throws Error(kUnsupported, "model") for a family without a language model in this build.
std::unique_ptr<LanguageModel> load_language_model(const ModelFile& file, Backend& backend,
                                                   const LoadOptions& options = {});

}  // namespace bf
