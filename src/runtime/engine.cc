#include "batch_forge/runtime/engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include <nlohmann/json.hpp>

#include "batch_forge/core/error.h"
#include "batch_forge/core/log.h"
#include "batch_forge/models/model.h"
#include "runtime/token_output.h"

namespace bf {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

constexpr std::string_view kTokenizerKey = "batch_forge.tokenizer";
constexpr std::string_view kChatTemplateKey = "batch_forge.chat_template";
constexpr std::string_view kSpecialTokensKey = "batch_forge.special_tokens";

SpecialTokens parse_special_tokens(const std::string& text, const std::string& source, int64_t vocab) {
  auto fail = [&](const std::string& why) -> SpecialTokens {
    throw Error(ErrorCode::kInvalidFile, "engine", cat(source, ": metadata ", kSpecialTokensKey, " ", why));
  };
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    return fail(cat("is not JSON: ", e.what()));
  }
  if (!j.is_object()) return fail("is not a JSON object");
  SpecialTokens s;
  auto id = [&](const nlohmann::json& v, const char* what) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= vocab)
      fail(cat("has ", what, " ", v.dump(), "; expected a token id in [0, ", vocab, ")"));
    return v.get<int32_t>();
  };
  if (j.contains("bos") && !j["bos"].is_null()) s.bos = id(j["bos"], "bos");
  if (j.contains("eos")) {
    if (!j["eos"].is_array()) fail("has eos that is not an array of token ids");
    for (const auto& e : j["eos"]) s.eos.push_back(id(e, "eos"));
  }
  if (j.contains("add_bos")) {
    if (!j["add_bos"].is_boolean()) fail("has add_bos that is not true or false");
    s.add_bos = j["add_bos"].get<bool>();
  }
  if (s.add_bos && !s.bos) fail("asks for add_bos without a bos token");
  return s;
}

}  // namespace

std::unique_ptr<Engine> Engine::open(const std::filesystem::path& path, const EngineOptions& options) {
  std::unique_ptr<Engine> e(new Engine());
  e->options_ = options;
  e->file_ = std::make_unique<ModelFile>(open_model(path));
  e->backend_ = create_backend(options.backend, options.backend_options);
  e->model_ = load_language_model(*e->file_, *e->backend_, options.load);
  e->pool_ = std::make_unique<KvPool>(*e->backend_, e->model_->kv_layout(), options.kv_page_size, options.kv_memory);

  const auto& meta = e->file_->file().metadata();
  const std::string& source = e->file_->path();
  const int64_t vocab = e->model_->vocab_size();
  if (auto it = meta.find(std::string(kTokenizerKey)); it != meta.end()) {
    e->tokenizer_ = Tokenizer::from_json(it->second, cat(source, ": ", kTokenizerKey));
    if (e->tokenizer_->vocab_size() > vocab)
      throw Error(ErrorCode::kInvalidFile, "engine",
                  cat(source, ": the tokenizer has ", e->tokenizer_->vocab_size(),
                      " tokens but the model's vocabulary has ", vocab, ": they do not belong together"));
  }
  if (auto it = meta.find(std::string(kChatTemplateKey)); it != meta.end()) {
    try {
      e->chat_ = ChatTemplate::from_source(it->second);
    } catch (const Error& err) {
      // A template we cannot render is not fatal: plain completion still works.
      BF_LOG(kWarn, "[engine] ", source, ": chat template not usable (", err.what(), ")");
    }
  }
  if (auto it = meta.find(std::string(kSpecialTokensKey)); it != meta.end())
    e->special_ = parse_special_tokens(it->second, source, vocab);
  return e;
}

const Tokenizer& Engine::tokenizer() const {
  if (!tokenizer_)
    throw Error(ErrorCode::kNotFound, "engine",
                cat(file_->path(), ": no tokenizer in the file (metadata ", kTokenizerKey, "); pass token ids"));
  return *tokenizer_;
}

std::vector<int32_t> Engine::encode_prompt(std::string_view text) const {
  std::vector<int32_t> ids;
  if (special_.add_bos) ids.push_back(*special_.bos);
  const std::vector<int32_t> body = tokenizer().encode(text);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

std::vector<int32_t> Engine::encode_chat(std::span<const ChatMessage> messages) const {
  if (!chat_)
    throw Error(ErrorCode::kUnsupported, "chat",
                cat(file_->path(), ": no usable chat template (metadata ", kChatTemplateKey, ")"));
  return encode_prompt(chat_->render(messages, true));
}

GenerationResult Engine::generate(SeqState& seq, const GenerationRequest& request,
                                  const std::function<void(std::string_view)>& on_text) {
  const auto t0 = Clock::now();
  const int64_t context = model_->max_seq_len(), held = seq.n_tokens();
  const auto n_new = static_cast<int64_t>(request.prompt.size());
  if (n_new == 0) throw Error(ErrorCode::kInvalidArgument, "generate", "the prompt is empty");
  if (held + n_new >= context)
    throw Error(ErrorCode::kInvalidArgument, "generate",
                cat("prompt of ", n_new, " tokens", held ? cat(" after ", held, " held") : std::string(),
                    " does not fit the context of ", context, " tokens with room to generate"));
  if (request.max_tokens < 1)
    throw Error(ErrorCode::kInvalidArgument, "generate", cat("max_tokens must be >= 1, got ", request.max_tokens));
  Sampler sampler(request.sampling);
  TokenOutput output(*this, request, std::min(request.max_tokens, context - held - n_new));

  std::vector<float> logits;
  auto feed = [&](std::span<const int32_t> tokens) {
    seq.reserve(static_cast<int64_t>(tokens.size()));
    const SeqInput in{tokens, seq.n_tokens(), seq.pages(), false};
    model_->forward({&in, 1}, pool_->view(), logits);
    seq.commit(static_cast<int64_t>(tokens.size()));
  };
  const std::span<const int32_t> prompt(request.prompt);
  for (int64_t i = 0; i < n_new; i += options_.prefill_chunk)
    feed(prompt.subspan(static_cast<size_t>(i), static_cast<size_t>(std::min(options_.prefill_chunk, n_new - i))));
  const double prefill_seconds = since(t0);

  Clock::time_point first;
  double ttft = 0;
  for (;;) {
    output.mask_logits(logits);
    SampledToken t = sampler.sample(logits, prompt, output.tokens());
    if (output.tokens().empty()) {
      first = Clock::now();
      ttft = since(t0);
    }
    const std::string text = output.add(std::move(t));
    if (on_text && !text.empty()) on_text(text);
    if (output.done()) break;
    feed({&output.tokens().back(), 1});
  }
  const std::string rest = output.finish();
  if (on_text && !rest.empty()) on_text(rest);
  GenerationResult out = std::move(output.result());
  out.prefill_seconds = prefill_seconds;
  out.ttft_seconds = ttft;
  out.decode_seconds = since(first);
  return out;
}

}  // namespace bf
