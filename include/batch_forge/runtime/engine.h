// Engine: one model file opened for serving — the mapping, the backend, the family's model, the
// KV page pool sized once from --kv-memory, and the text side the file carries (tokenizer, chat
// template, special tokens; docs/model-format.md). Everything a request needs except its own
// state (SeqState) and sampler.
//
// generate() runs one request to the end on the calling thread: prefill of the new tokens in
// chunks, then one decode step per token, sampling, stop strings and streaming. It is the
// single-request path the CLI uses; RequestManager (request_manager.h) batches many requests
// through the same LanguageModel::forward.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "batch_forge/backends/backend.h"
#include "batch_forge/io/model_file.h"
#include "batch_forge/models/language_model.h"
#include "batch_forge/runtime/kv_cache.h"
#include "batch_forge/runtime/sampler.h"
#include "batch_forge/text/chat_template.h"
#include "batch_forge/text/tokenizer.h"

namespace bf {

struct EngineOptions {
  std::string backend = "cpu";
  BackendOptions backend_options;
  LoadOptions load;
  int64_t kv_memory = int64_t{256} << 20;  // bytes for the KV page pool, allocated at open
  int64_t kv_page_size = 16;               // tokens per page
  int64_t prefill_chunk = 512;             // tokens per forward while prefilling a long prompt
};

// batch_forge.special_tokens: {"bos": id | null, "eos": [ids], "add_bos": bool}.
struct SpecialTokens {
  std::optional<int32_t> bos;
  std::vector<int32_t> eos;
  bool add_bos = false;
};

struct GenerationRequest {
  std::vector<int32_t> prompt;  // new tokens, appended after what the SeqState already holds
  SamplingParams sampling;
  int64_t max_tokens = 256;
  std::vector<std::string> stop;  // stop strings (not part of the output)
  bool ignore_eos = false;
  bool logprobs = false;  // keep each token's SampledToken (logprob, sampling.top_logprobs alternatives)
};

struct GenerationResult {
  std::vector<int32_t> tokens;         // generated ids (an end-of-sequence token included)
  std::string text;                    // their text, cut before a stop string; special tokens left out
  std::string finish_reason;           // "stop" (eos or a stop string) or "length" (max_tokens or context)
  std::vector<SampledToken> logprobs;  // one per token when request.logprobs
  // Generated tokens whose K/V are not cached yet (the last one: it was sampled, never fed). A
  // follow-up turn on the same SeqState passes them first.
  std::vector<int32_t> pending;
  int64_t prompt_tokens = 0;
  double prefill_seconds = 0;  // the prompt's forwards, up to the first token's logits
  double ttft_seconds = 0;     // from the call to the first token sampled
  double decode_seconds = 0;   // from the first token to the last
};

class Engine {
 public:
  // Opens and validates the file (open_model), loads the model, allocates the KV pool. Throws
  // Error: kInvalidFile for a broken file, kUnsupported for a family without a language model,
  // kInvalidFile when the tokenizer does not fit the model's vocabulary.
  static std::unique_ptr<Engine> open(const std::filesystem::path& path, const EngineOptions& options = {});

  Backend& backend() { return *backend_; }
  LanguageModel& model() { return *model_; }
  int64_t model_vocab_size() const { return model_->vocab_size(); }
  int64_t context_length() const { return model_->max_seq_len(); }
  KvPool& kv_pool() { return *pool_; }
  const ModelFile& file() const { return *file_; }
  const EngineOptions& options() const { return options_; }

  bool has_tokenizer() const { return tokenizer_.has_value(); }
  // Throws Error(kNotFound, "engine") when the file carries no tokenizer.
  const Tokenizer& tokenizer() const;
  const ChatTemplate* chat_template() const { return chat_ ? &*chat_ : nullptr; }
  const SpecialTokens& special_tokens() const { return special_; }

  // Text → prompt ids, with the BOS token first when the file asks for it.
  std::vector<int32_t> encode_prompt(std::string_view text) const;
  // Messages → prompt ids through the chat template. Throws Error(kUnsupported, "chat") when the
  // file has no chat template.
  std::vector<int32_t> encode_chat(std::span<const ChatMessage> messages) const;

  // Runs one request on `seq` (which may already hold earlier turns). on_text receives the
  // output text as it becomes final. Throws Error(kInvalidArgument) for a prompt that does not
  // fit the context (naming both numbers) and kResourceExhausted when the KV pool runs out.
  GenerationResult generate(SeqState& seq, const GenerationRequest& request,
                            const std::function<void(std::string_view)>& on_text = {});

 private:
  Engine() = default;

  EngineOptions options_;
  std::unique_ptr<ModelFile> file_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<LanguageModel> model_;
  std::unique_ptr<KvPool> pool_;
  std::optional<Tokenizer> tokenizer_;
  std::optional<ChatTemplate> chat_;
  SpecialTokens special_;
};

}  // namespace bf
