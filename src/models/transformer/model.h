// The decoder-only Transformer LM family (python/batch_forge/families/transformer.py is its
// reference): pre-norm blocks, grouped-query attention with rotate-half RoPE over the paged KV
// cache, SwiGLU or GELU MLP, tied or separate output head.
#pragma once

#include <memory>

#include "batch_forge/models/language_model.h"

namespace bf::transformer {

std::unique_ptr<LanguageModel> load(const ModelFile& file, Backend& backend, const LoadOptions& options);

}  // namespace bf::transformer
