#include "runtime/token_output.h"

#include <algorithm>
#include <cmath>

#include "batch_forge/core/error.h"

namespace bf {

TokenOutput::TokenOutput(const Engine& engine, const GenerationRequest& request, int64_t max_new)
    : request_(&request),
      eos_(&engine.special_tokens().eos),
      n_text_(engine.has_tokenizer() ? engine.tokenizer().vocab_size() : engine.model_vocab_size()),
      max_new_(max_new),
      stop_(request.stop) {
  if (!request.stop.empty() && !engine.has_tokenizer())
    throw Error(ErrorCode::kInvalidArgument, "generate", "stop strings need a model file with a tokenizer");
  if (engine.has_tokenizer()) decoder_.emplace(engine.tokenizer(), /*skip_special=*/true);
  result_.prompt_tokens = static_cast<int64_t>(request.prompt.size());
}

void TokenOutput::mask_logits(std::span<float> logits) const {
  if (static_cast<int64_t>(logits.size()) > n_text_) std::fill(logits.begin() + n_text_, logits.end(), -INFINITY);
}

std::string TokenOutput::add(SampledToken token) {
  BF_CHECK(!done(), "a token added after the end of the generation");
  const int32_t id = token.id;
  result_.tokens.push_back(id);
  if (request_->logprobs) result_.logprobs.push_back(std::move(token));
  if (!request_->ignore_eos && std::find(eos_->begin(), eos_->end(), id) != eos_->end()) {
    result_.finish_reason = "stop";
    return {};
  }
  std::string text;
  if (decoder_) {
    const StopResult r = stop_.push(decoder_->push(id));
    text = r.emit;
    if (r.stopped) result_.finish_reason = "stop";
  }
  if (!done() && static_cast<int64_t>(result_.tokens.size()) >= max_new_) result_.finish_reason = "length";
  result_.text += text;
  return text;
}

std::string TokenOutput::finish(const char* reason) {
  if (!done()) result_.finish_reason = reason;
  std::string rest;
  if (decoder_ && !stop_.stopped()) {
    const StopResult r = stop_.push(decoder_->flush());
    rest = r.emit;
    if (!r.stopped) rest += stop_.flush();
  }
  result_.text += rest;
  if (!result_.tokens.empty()) result_.pending = {result_.tokens.back()};
  return rest;
}

}  // namespace bf
