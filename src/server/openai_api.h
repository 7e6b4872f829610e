// The OpenAI wire format of /v1/completions and /v1/chat/completions: request bodies into
// GenerationRequests (every field's type and range checked, errors naming the field), results
// and stream chunks into response bodies and server-sent events. JSON and text only: nothing
// here touches a socket or the model, so the I/O threads run all of it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "batch_forge/runtime/engine.h"
#include "batch_forge/runtime/request_manager.h"
#include "batch_forge/text/chat_template.h"
#include "server/api_error.h"

namespace bf::server {

enum class Route { kCompletions, kChat };

// A request body as the client sent it, its fields checked for type and range; nothing
// tokenized yet. Unknown fields are ignored (clients send extensions we do not know); known ones
// we cannot honour (n > 1, echo, logit_bias, tools, ...) are refused rather than dropped.
struct ApiRequest {
  Route route = Route::kCompletions;
  std::string model;  // empty: not given
  // /v1/completions: the prompt as text or as token ids (range-checked against the vocabulary later).
  std::optional<std::string> prompt_text;
  std::vector<int32_t> prompt_ids;
  // /v1/chat/completions
  std::vector<ChatMessage> messages;

  std::optional<int64_t> max_tokens;  // >= 1 when given
  SamplingParams sampling;            // validated; top_logprobs set from logprobs / top_logprobs
  bool has_seed = false;
  std::vector<std::string> stop;
  bool ignore_eos = false;  // extension (vLLM's): generate exactly max_tokens
  bool logprobs = false;
  bool return_token_ids = false;  // extension (vLLM's): token ids in the response
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
};

// Throws ApiError(400) for malformed JSON, a body that is not an object, a field of the wrong
// type, a value out of range (naming the field, the value and the allowed range) or a feature
// this server does not have.
ApiRequest parse_api_request(Route route, std::string_view body);

// What the server allows, on top of the RequestManager's own checks.
struct RequestLimits {
  int64_t context = 0;            // the model's context length
  int64_t vocab = 0;              // token ids are in [0, vocab)
  int64_t max_prompt_tokens = 0;  // --max-prompt-tokens
  int64_t max_tokens = 0;         // --max-tokens-limit
  int64_t kv_tokens = 0;          // tokens the whole KV pool holds
};

// Tokenizes (chat template for chat) and applies the limits. Without max_tokens a completion
// generates 16 tokens (OpenAI's default) and a chat reply runs to the limit, the end of the
// context or what the KV pool could hold, whichever comes first; a max_tokens past the end of the
// context is cut to it (finish_reason "length").
// `seed` is used when the request names none.
GenerationRequest to_generation_request(const ApiRequest& request, const Engine& engine, const RequestLimits& limits,
                                        uint64_t seed);

// What every response of one request shares.
struct ResponseInfo {
  Route route = Route::kCompletions;
  std::string id;       // "cmpl-..." / "chatcmpl-..."
  int64_t created = 0;  // Unix seconds
  std::string model;
  const Tokenizer* tokenizer = nullptr;  // token strings in logprobs; null: the model has none
  bool logprobs = false;
  int64_t prompt_tokens = 0;
  bool token_ids = false;           // "token_ids" (and "prompt_token_ids") in each choice
  std::vector<int32_t> prompt_ids;  // filled when token_ids
};

// The non-streaming body: "text_completion" or "chat.completion" with usage.
std::string response_body(const ResponseInfo& info, const GenerationResult& result);

// Server-sent events of one streaming response, each "data: {json}\n\n".
class StreamEncoder {
 public:
  StreamEncoder(ResponseInfo info, bool include_usage) : info_(std::move(info)), include_usage_(include_usage) {}

  // Chat: the first chunk, which carries the role. Completions: nothing.
  std::string start() const;
  // The chunk for new output; "" when it holds nothing to send.
  std::string chunk(const StreamChunk& chunk);
  // The chunk with finish_reason, the usage chunk when asked for, then "data: [DONE]".
  std::string finish(const GenerationResult& result) const;
  // A failure after the stream began: an error event, then "data: [DONE]".
  static std::string error(const ApiError& error);

 private:
  ResponseInfo info_;
  bool include_usage_;
  int64_t text_offset_ = 0;  // completions logprobs: where the next token's text starts
};

}  // namespace bf::server
