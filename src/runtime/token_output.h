// The output side of one generation, shared by Engine::generate (one request on the caller's
// thread) and the RequestManager's scheduler (many): each sampled token is checked against the
// end-of-sequence ids, decoded to text as it becomes whole UTF-8, passed through the stop strings
// and counted against the length limit. What it returns from add() is final text for the client.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "batch_forge/runtime/engine.h"
#include "batch_forge/runtime/stop_strings.h"

namespace bf {

class TokenOutput {
 public:
  // max_new: tokens this generation may produce (max_tokens, capped by the room left in the
  // context). Throws Error(kInvalidArgument) for stop strings without a tokenizer.
  TokenOutput(const Engine& engine, const GenerationRequest& request, int64_t max_new);

  // Masks the logits of ids the tokenizer does not know (a vocabulary padded past the tokenizer's
  // last id has rows no text maps to: they must never be sampled).
  void mask_logits(std::span<float> logits) const;

  // Records one sampled token. Returns the text that became final; after it, done() tells whether
  // the generation ended (finish_reason set: "stop" for an end-of-sequence id or a stop string,
  // "length" for the limit).
  std::string add(SampledToken token);
  bool done() const { return !result_.finish_reason.empty(); }

  // Ends the stream with `reason` if it has not ended yet ("cancelled"), and returns the text
  // still held back (nothing after a stop string). Call once, at the end.
  std::string finish(const char* reason = "cancelled");

  const std::vector<int32_t>& tokens() const { return result_.tokens; }
  GenerationResult& result() { return result_; }

 private:
  const GenerationRequest* request_;
  const std::vector<int32_t>* eos_;
  int64_t n_text_;
  int64_t max_new_;
  StopMatcher stop_;
  std::optional<StreamDecoder> decoder_;
  GenerationResult result_;
};

}  // namespace bf
