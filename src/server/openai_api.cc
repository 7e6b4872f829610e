#include "server/openai_api.h"

#include <algorithm>
#include <limits>

#include <nlohmann/json.hpp>

#include "batch_forge/core/error.h"

namespace bf::server {
namespace {

using json = nlohmann::json;

// Response text may hold token bytes that are not whole UTF-8 characters (logprobs of a token
// that splits a character): they become U+FFFD rather than failing the response.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string sse(const json& j) { return "data: " + dump(j) + "\n\n"; }

// How a value looks in an error message: its JSON type and, if short, the value.
std::string describe(const json& v) {
  const char* type = v.is_string()           ? "a string"
                     : v.is_boolean()        ? "a boolean"
                     : v.is_number_integer() ? "an integer"
                     : v.is_number()         ? "a number"
                     : v.is_array()          ? "an array"
                     : v.is_object()         ? "an object"
                                             : "null";
  std::string text = dump(v);
  if (text.size() > 40) return type;
  return cat(type, " (", text, ")");
}

[[noreturn]] void wrong_type(const std::string& field, const char* expected, const json& v) {
  throw ApiError(400, cat("'", field, "' must be ", expected, ", got ", describe(v)), field, "invalid_type");
}

[[noreturn]] void invalid_value(const std::string& field, const std::string& message) {
  throw ApiError(400, message, field, "invalid_value");
}

// A field that is absent or null counts as not given: clients send null for "default".
const json* find(const json& body, const char* name) {
  auto it = body.find(name);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

std::optional<double> get_number(const json& body, const char* name) {
  const json* v = find(body, name);
  if (!v) return std::nullopt;
  if (!v->is_number()) wrong_type(name, "a number", *v);
  return v->get<double>();
}

std::optional<int64_t> get_integer(const json& body, const char* name) {
  const json* v = find(body, name);
  if (!v) return std::nullopt;
  if (!v->is_number_integer()) wrong_type(name, "an integer", *v);
  if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t{std::numeric_limits<int64_t>::max()})
    return std::numeric_limits<int64_t>::max();
  return v->get<int64_t>();
}

std::optional<bool> get_bool(const json& body, const char* name) {
  const json* v = find(body, name);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) wrong_type(name, "true or false", *v);
  return v->get<bool>();
}

std::optional<std::string> get_string(const json& body, const char* name) {
  const json* v = find(body, name);
  if (!v) return std::nullopt;
  if (!v->is_string()) wrong_type(name, "a string", *v);
  return v->get<std::string>();
}

int32_t clamp_int32(int64_t v) {
  return static_cast<int32_t>(
      std::clamp<int64_t>(v, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()));
}

// Sets one sampling field after SamplingParams::validate has seen it alone (the defaults are
// valid, so a failure is this field's); its message names the field, the value and the range.
template <typename T>
void set_sampling(SamplingParams& params, const char* field, T SamplingParams::*member, T value) {
  SamplingParams probe;
  probe.*member = value;
  try {
    probe.validate();
  } catch (const Error& e) {
    invalid_value(field, e.message());
  }
  params.*member = value;
}

void parse_sampling(const json& body, ApiRequest& r) {
  SamplingParams& s = r.sampling;
  if (auto v = get_number(body, "temperature"))
    set_sampling(s, "temperature", &SamplingParams::temperature, static_cast<float>(*v));
  if (auto v = get_number(body, "top_p")) set_sampling(s, "top_p", &SamplingParams::top_p, static_cast<float>(*v));
  if (auto v = get_integer(body, "top_k")) set_sampling(s, "top_k", &SamplingParams::top_k, clamp_int32(*v));
  if (auto v = get_number(body, "min_p")) set_sampling(s, "min_p", &SamplingParams::min_p, static_cast<float>(*v));
  if (auto v = get_number(body, "presence_penalty"))
    set_sampling(s, "presence_penalty", &SamplingParams::presence_penalty, static_cast<float>(*v));
  if (auto v = get_number(body, "frequency_penalty"))
    set_sampling(s, "frequency_penalty", &SamplingParams::frequency_penalty, static_cast<float>(*v));
  if (auto v = get_number(body, "repetition_penalty"))
    set_sampling(s, "repetition_penalty", &SamplingParams::repetition_penalty, static_cast<float>(*v));
  if (const json* v = find(body, "seed")) {
    // OpenAI's seeds are signed 64-bit; any integer maps onto the sampler's 64-bit seed.
    if (!v->is_number_integer()) wrong_type("seed", "an integer", *v);
    s.seed = v->is_number_unsigned() ? v->get<uint64_t>() : static_cast<uint64_t>(v->get<int64_t>());
    r.has_seed = true;
  }
}

constexpr size_t kMaxStopStrings = 16;

void parse_stop(const json& body, ApiRequest& r) {
  const json* v = find(body, "stop");
  if (!v) return;
  auto add = [&](const json& s, const std::string& field) {
    if (!s.is_string()) wrong_type(field, "a string", s);
    if (s.get_ref<const std::string&>().empty()) invalid_value(field, cat("'", field, "' is an empty stop string"));
    r.stop.push_back(s.get<std::string>());
  };
  if (v->is_string()) {
    add(*v, "stop");
  } else if (v->is_array()) {
    if (v->size() > kMaxStopStrings)
      invalid_value("stop", cat("'stop' has ", v->size(), " strings but at most ", kMaxStopStrings, " are allowed"));
    for (size_t i = 0; i < v->size(); ++i) add((*v)[i], cat("stop[", i, "]"));
  } else {
    wrong_type("stop", "a string or an array of strings", *v);
  }
}

// Fields of the OpenAI API that change the output in ways this server does not implement: a
// request that sets them gets a 400 instead of an answer that silently ignores them.
void refuse_unsupported(const json& body, Route route) {
  if (auto n = get_integer(body, "n"); n && *n != 1)
    invalid_value("n", cat("'n' is ", *n, " but this server generates one choice per request (n must be 1)"));
  if (const json* v = find(body, "logit_bias")) {
    if (!v->is_object()) wrong_type("logit_bias", "an object", *v);
    if (!v->empty()) invalid_value("logit_bias", "'logit_bias' is not supported by this server");
  }
  if (route == Route::kCompletions) {
    if (auto echo = get_bool(body, "echo"); echo && *echo)
      invalid_value("echo", "'echo' is not supported by this server (it must be false)");
    if (auto best_of = get_integer(body, "best_of"); best_of && *best_of != 1)
      invalid_value("best_of", cat("'best_of' is ", *best_of, " but must be 1"));
    if (auto suffix = get_string(body, "suffix"); suffix && !suffix->empty())
      invalid_value("suffix", "'suffix' is not supported by this server");
  } else {
    for (const char* name : {"tools", "functions"}) {
      if (const json* v = find(body, name)) {
        if (!v->is_array()) wrong_type(name, "an array", *v);
        if (!v->empty()) invalid_value(name, cat("'", name, "' (tool calling) is not supported by this server"));
      }
    }
    if (const json* v = find(body, "response_format")) {
      if (!v->is_object()) wrong_type("response_format", "an object", *v);
      auto type = get_string(*v, "type");
      if (type && *type != "text")
        invalid_value("response_format", cat("response_format type '", *type, "' is not supported (only 'text')"));
    }
  }
}

void parse_prompt(const json& body, ApiRequest& r) {
  const json* v = find(body, "prompt");
  if (!v) throw ApiError(400, "'prompt' is required", "prompt", "missing_field");
  if (v->is_string()) {
    r.prompt_text = v->get<std::string>();
    return;
  }
  if (!v->is_array() || v->empty()) wrong_type("prompt", "a string or a non-empty array of token ids", *v);
  // One prompt per request: a batch (array of strings or of id arrays) would need n choices.
  if ((*v)[0].is_string() || (*v)[0].is_array())
    invalid_value("prompt", "'prompt' holds several prompts; this server takes one prompt per request");
  r.prompt_ids.reserve(v->size());
  for (size_t i = 0; i < v->size(); ++i) {
    const json& id = (*v)[i];
    if (!id.is_number_integer()) wrong_type(cat("prompt[", i, "]"), "a token id (an integer)", id);
    // Out-of-range ids saturate here and are refused against the vocabulary later.
    r.prompt_ids.push_back(id.is_number_unsigned()
                               ? static_cast<int32_t>(std::min<uint64_t>(id.get<uint64_t>(), INT32_MAX))
                               : clamp_int32(id.get<int64_t>()));
  }
}

std::string message_content(const json& message, const std::string& field) {
  const json* content = find(message, "content");
  if (!content) return {};
  if (content->is_string()) return content->get<std::string>();
  if (!content->is_array()) wrong_type(field + ".content", "a string or an array of text parts", *content);
  std::string text;
  for (size_t i = 0; i < content->size(); ++i) {
    const json& part = (*content)[i];
    const std::string part_field = cat(field, ".content[", i, "]");
    if (!part.is_object()) wrong_type(part_field, "an object", part);
    auto type = get_string(part, "type");
    if (type != "text")
      invalid_value(part_field + ".type",
                    cat("content part type '", type.value_or(""), "' is not supported (only 'text')"));
    auto part_text = get_string(part, "text");
    if (!part_text) throw ApiError(400, cat("'", part_field, ".text' is required"), part_field + ".text");
    text += *part_text;
  }
  return text;
}

void parse_messages(const json& body, ApiRequest& r) {
  const json* v = find(body, "messages");
  if (!v) throw ApiError(400, "'messages' is required", "messages", "missing_field");
  if (!v->is_array()) wrong_type("messages", "an array of messages", *v);
  if (v->empty()) invalid_value("messages", "'messages' is empty");
  for (size_t i = 0; i < v->size(); ++i) {
    const json& m = (*v)[i];
    const std::string field = cat("messages[", i, "]");
    if (!m.is_object()) wrong_type(field, "an object", m);
    auto role = get_string(m, "role");
    if (!role) throw ApiError(400, cat("'", field, ".role' is required"), field + ".role", "missing_field");
    // "developer" is the newer name of "system" (OpenAI's o-series); the template knows only system.
    if (*role == "developer") role = "system";
    if (*role != "system" && *role != "user" && *role != "assistant")
      invalid_value(field + ".role",
                    cat("'", field, ".role' is '", *role, "' but must be system, developer, user or assistant"));
    r.messages.push_back({*role, message_content(m, field)});
  }
}

}  // namespace

std::string error_body(const ApiError& error) {
  json e = {{"message", error.message}, {"type", error.type}, {"param", nullptr}, {"code", nullptr}};
  if (!error.param.empty()) e["param"] = error.param;
  if (!error.code.empty()) e["code"] = error.code;
  return dump(json{{"error", e}});
}

ApiError api_error_from(const Error& error) {
  switch (error.code()) {
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kUnsupported: return ApiError(400, error.message(), {}, "invalid_request");
    case ErrorCode::kNotFound: return ApiError(404, error.message(), {}, "not_found");
    case ErrorCode::kResourceExhausted: return ApiError(429, error.message(), {}, "queue_full", "rate_limit_error");
    case ErrorCode::kUnavailable: return ApiError(503, error.message(), {}, "unavailable");
    default: return ApiError(500, error.what(), {}, "internal_error");
  }
}

ApiRequest parse_api_request(Route route, std::string_view body) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::parse_error& e) {
    // what() is "[json.exception.parse_error.101] parse error at line 1, column 16: ..."
    std::string_view why = e.what();
    if (auto end = why.find("] "); why.starts_with("[json.") && end != std::string_view::npos)
      why.remove_prefix(end + 2);
    throw ApiError(400, cat("the request body is not valid JSON: ", why), {}, "invalid_json");
  }
  if (!j.is_object())
    throw ApiError(400, cat("the request body must be a JSON object, got ", describe(j)), {}, "invalid_json");

  ApiRequest r;
  r.route = route;
  if (auto model = get_string(j, "model")) r.model = *model;
  refuse_unsupported(j, route);
  if (route == Route::kCompletions)
    parse_prompt(j, r);
  else
    parse_messages(j, r);

  // Chat's newer name wins over the older one, as in OpenAI's API.
  const char* max_name =
      route == Route::kChat && find(j, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  if (auto max_tokens = get_integer(j, max_name)) {
    if (*max_tokens < 1) invalid_value(max_name, cat("'", max_name, "' is ", *max_tokens, " but must be >= 1"));
    r.max_tokens = *max_tokens;
  }
  parse_sampling(j, r);
  parse_stop(j, r);
  r.ignore_eos = get_bool(j, "ignore_eos").value_or(false);
  r.return_token_ids = get_bool(j, "return_token_ids").value_or(false);
  r.stream = get_bool(j, "stream").value_or(false);
  if (const json* options = find(j, "stream_options")) {
    if (!options->is_object()) wrong_type("stream_options", "an object", *options);
    r.include_usage = get_bool(*options, "include_usage").value_or(false);
  }

  if (route == Route::kCompletions) {
    // Legacy completions: logprobs is the number of alternatives to list per token.
    if (auto n = get_integer(j, "logprobs")) {
      if (*n < 0 || *n > SamplingParams::kMaxTopLogprobs)
        invalid_value("logprobs",
                      cat("'logprobs' is ", *n, " but must be in [0, ", SamplingParams::kMaxTopLogprobs, "]"));
      r.logprobs = true;
      r.sampling.top_logprobs = static_cast<int32_t>(*n);
    }
  } else {
    r.logprobs = get_bool(j, "logprobs").value_or(false);
    if (auto n = get_integer(j, "top_logprobs")) {
      set_sampling(r.sampling, "top_logprobs", &SamplingParams::top_logprobs, clamp_int32(*n));
      if (*n > 0 && !r.logprobs) invalid_value("top_logprobs", "'top_logprobs' needs 'logprobs': true");
    }
  }
  return r;
}

GenerationRequest to_generation_request(const ApiRequest& r, const Engine& engine, const RequestLimits& limits,
                                        uint64_t seed) {
  GenerationRequest g;
  const char* prompt_field = r.route == Route::kChat ? "messages" : "prompt";
  try {
    if (r.route == Route::kChat) {
      if (!engine.chat_template())
        throw ApiError(400, "this model has no usable chat template; use /v1/completions", "messages",
                       "chat_template_missing");
      g.prompt = engine.encode_chat(r.messages);
      g.stop = engine.chat_template()->stop_strings();
    } else if (r.prompt_text) {
      if (!engine.has_tokenizer())
        throw ApiError(400, "this model has no tokenizer: send the prompt as an array of token ids", "prompt",
                       "tokenizer_missing");
      g.prompt = engine.encode_prompt(*r.prompt_text);
    } else {
      for (size_t i = 0; i < r.prompt_ids.size(); ++i)
        if (r.prompt_ids[i] < 0 || r.prompt_ids[i] >= limits.vocab)
          invalid_value(cat("prompt[", i, "]"),
                        cat("prompt token ", r.prompt_ids[i], " is outside the vocabulary [0, ", limits.vocab, ")"));
      g.prompt = r.prompt_ids;
    }
  } catch (const Error& e) {
    throw ApiError(400, e.message(), prompt_field, "invalid_prompt");
  }

  const auto n_prompt = static_cast<int64_t>(g.prompt.size());
  if (n_prompt == 0) invalid_value(prompt_field, "the prompt is empty");
  if (n_prompt > limits.max_prompt_tokens)
    throw ApiError(400,
                   cat("the prompt has ", n_prompt, " tokens but this server takes at most ", limits.max_prompt_tokens,
                       " (--max-prompt-tokens)"),
                   prompt_field, "context_length_exceeded");
  if (n_prompt >= limits.context)
    throw ApiError(400,
                   cat("the prompt has ", n_prompt, " tokens but the model's context is ", limits.context,
                       " tokens, which leaves no room to generate"),
                   prompt_field, "context_length_exceeded");

  const char* max_name = "max_tokens";
  if (r.max_tokens && *r.max_tokens > limits.max_tokens)
    throw ApiError(400,
                   cat("'", max_name, "' is ", *r.max_tokens, " but this server allows at most ", limits.max_tokens,
                       " (--max-tokens-limit)"),
                   max_name, "invalid_value");
  // A chat reply without max_tokens must not be refused for a pool that could not hold the whole
  // context (the manager takes only requests that fit the pool alone to their last token).
  const int64_t wanted = r.max_tokens ? *r.max_tokens
                         : r.route == Route::kChat
                             ? std::max<int64_t>(1, std::min(limits.max_tokens, limits.kv_tokens - n_prompt))
                             : 16;
  g.max_tokens = std::min(wanted, limits.context - n_prompt);

  if (!r.stop.empty() && !engine.has_tokenizer()) invalid_value("stop", "stop strings need a model with a tokenizer");
  g.stop.insert(g.stop.end(), r.stop.begin(), r.stop.end());
  g.sampling = r.sampling;
  if (!r.has_seed) g.sampling.seed = seed;
  g.ignore_eos = r.ignore_eos;
  g.logprobs = r.logprobs;
  return g;
}

namespace {

std::string token_text(const ResponseInfo& info, int32_t id) {
  return info.tokenizer && id >= 0 && id < info.tokenizer->vocab_size() ? info.tokenizer->token_bytes(id)
                                                                        : std::string();
}

json token_bytes_array(const std::string& text) {
  json bytes = json::array();
  for (unsigned char c : text) bytes.push_back(static_cast<int>(c));
  return bytes;
}

// Chat logprobs: {"content": [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}]}.
json chat_logprobs(const ResponseInfo& info, const std::vector<SampledToken>& tokens) {
  json content = json::array();
  for (const SampledToken& t : tokens) {
    const std::string text = token_text(info, t.id);
    json top = json::array();
    for (const TokenLogprob& alt : t.top) {
      const std::string alt_text = token_text(info, alt.id);
      top.push_back({{"token", alt_text}, {"logprob", alt.logprob}, {"bytes", token_bytes_array(alt_text)}});
    }
    content.push_back(
        {{"token", text}, {"logprob", t.logprob}, {"bytes", token_bytes_array(text)}, {"top_logprobs", top}});
  }
  return {{"content", content}, {"refusal", nullptr}};
}

// Completions logprobs: parallel arrays, text_offset counted in bytes from the first generated token.
json completion_logprobs(const ResponseInfo& info, const std::vector<SampledToken>& tokens, int64_t& offset) {
  json texts = json::array(), logprobs = json::array(), tops = json::array(), offsets = json::array();
  for (const SampledToken& t : tokens) {
    const std::string text = token_text(info, t.id);
    texts.push_back(text);
    logprobs.push_back(t.logprob);
    json top = json::object();
    for (const TokenLogprob& alt : t.top) top[token_text(info, alt.id)] = alt.logprob;
    tops.push_back(top);
    offsets.push_back(offset);
    offset += static_cast<int64_t>(text.size());
  }
  return {{"tokens", texts}, {"token_logprobs", logprobs}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

json usage(const ResponseInfo& info, const GenerationResult& result) {
  const auto completion = static_cast<int64_t>(result.tokens.size());
  return {{"prompt_tokens", info.prompt_tokens},
          {"completion_tokens", completion},
          {"total_tokens", info.prompt_tokens + completion}};
}

json envelope(const ResponseInfo& info, const char* object) {
  return {{"id", info.id}, {"object", object}, {"created", info.created}, {"model", info.model}};
}

}  // namespace

std::string response_body(const ResponseInfo& info, const GenerationResult& result) {
  json choice = {{"index", 0}, {"finish_reason", result.finish_reason}, {"logprobs", nullptr}};
  json body;
  if (info.route == Route::kChat) {
    body = envelope(info, "chat.completion");
    choice["message"] = {{"role", "assistant"}, {"content", result.text}};
    if (info.logprobs) choice["logprobs"] = chat_logprobs(info, result.logprobs);
  } else {
    body = envelope(info, "text_completion");
    choice["text"] = result.text;
    int64_t offset = 0;
    if (info.logprobs) choice["logprobs"] = completion_logprobs(info, result.logprobs, offset);
  }
  if (info.token_ids) {
    choice["token_ids"] = result.tokens;
    choice["prompt_token_ids"] = info.prompt_ids;
  }
  body["choices"] = json::array({choice});
  body["usage"] = usage(info, result);
  return dump(body);
}

std::string StreamEncoder::start() const {
  if (info_.route != Route::kChat) return {};
  json body = envelope(info_, "chat.completion.chunk");
  body["choices"] = json::array({{{"index", 0},
                                  {"delta", {{"role", "assistant"}, {"content", ""}}},
                                  {"logprobs", nullptr},
                                  {"finish_reason", nullptr}}});
  if (include_usage_) body["usage"] = nullptr;
  return sse(body);
}

std::string StreamEncoder::chunk(const StreamChunk& chunk) {
  // Tokens whose text is still held back (a partial character, a possible stop string) are sent
  // with the text they complete, unless the client asked for every token's logprob.
  const bool with_logprobs = info_.logprobs && !chunk.logprobs.empty();
  const bool with_ids = info_.token_ids && !chunk.tokens.empty();
  if (chunk.text.empty() && !with_logprobs && !with_ids) return {};
  json choice = {{"index", 0}, {"finish_reason", nullptr}, {"logprobs", nullptr}};
  json body;
  if (info_.route == Route::kChat) {
    body = envelope(info_, "chat.completion.chunk");
    choice["delta"] = {{"content", chunk.text}};
    if (with_logprobs) choice["logprobs"] = chat_logprobs(info_, chunk.logprobs);
  } else {
    body = envelope(info_, "text_completion");
    choice["text"] = chunk.text;
    if (with_logprobs) choice["logprobs"] = completion_logprobs(info_, chunk.logprobs, text_offset_);
  }
  if (with_ids) choice["token_ids"] = chunk.tokens;
  body["choices"] = json::array({choice});
  if (include_usage_) body["usage"] = nullptr;
  return sse(body);
}

std::string StreamEncoder::finish(const GenerationResult& result) const {
  json choice = {{"index", 0}, {"finish_reason", result.finish_reason}, {"logprobs", nullptr}};
  json body;
  if (info_.route == Route::kChat) {
    body = envelope(info_, "chat.completion.chunk");
    choice["delta"] = json::object();
  } else {
    body = envelope(info_, "text_completion");
    choice["text"] = "";
  }
  body["choices"] = json::array({choice});
  if (include_usage_) body["usage"] = nullptr;
  std::string out = sse(body);
  if (include_usage_) {
    json last = envelope(info_, info_.route == Route::kChat ? "chat.completion.chunk" : "text_completion");
    last["choices"] = json::array();
    last["usage"] = usage(info_, result);
    out += sse(last);
  }
  return out + "data: [DONE]\n\n";
}

std::string StreamEncoder::error(const ApiError& error) {
  return "data: " + error_body(error) + "\n\ndata: [DONE]\n\n";
}

}  // namespace bf::server
