#include "batch_forge/models/language_model.h"

#include "batch_forge/core/error.h"
#include "models/transformer/model.h"

namespace bf {

std::unique_ptr<LanguageModel> load_language_model(const ModelFile& file, Backend& backend,
                                                   const LoadOptions& options) {
  if (file.family() == "transformer") return transformer::load(file, backend, options);
  throw Error(
      ErrorCode::kUnsupported, "model",
      cat(file.path(), ": family '", file.family(), "' has no language model in this build (known: transformer)"));
}

}  // namespace bf
