#include "server/openai_api.h"

#include <gtest/gtest.h>

#include <string>

#include <nlohmann/json.hpp>

#include "server/api_error.h"
#include "server/metrics.h"
#include "server/server_state.h"

namespace bf::server {
namespace {

using json = nlohmann::json;

// The ApiError a body gets, or a failure when it parses.
ApiError rejection(Route route, const std::string& body) {
  try {
    parse_api_request(route, body);
  } catch (const ApiError& e) {
    return e;
  }
  ADD_FAILURE() << "accepted: " << body;
  return ApiError(0, "");
}

TEST(OpenAiRequest, CompletionFieldsAreRead) {
  const ApiRequest r = parse_api_request(Route::kCompletions, R"({
    "model": "m", "prompt": "hello", "max_tokens": 7, "temperature": 0, "top_p": 0.5, "top_k": 3,
    "min_p": 0.1, "seed": 42, "stop": ["a", "b"], "presence_penalty": 0.5, "frequency_penalty": -1,
    "repetition_penalty": 1.2, "logprobs": 2, "n": 1, "echo": false, "stream": true,
    "stream_options": {"include_usage": true}, "user": "ignored", "unknown_extension": [1, 2]})");
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(r.prompt_text, "hello");
  EXPECT_EQ(r.max_tokens, 7);
  EXPECT_EQ(r.sampling.temperature, 0.0f);
  EXPECT_EQ(r.sampling.top_p, 0.5f);
  EXPECT_EQ(r.sampling.top_k, 3);
  EXPECT_EQ(r.sampling.min_p, 0.1f);
  EXPECT_EQ(r.sampling.seed, 42u);
  EXPECT_TRUE(r.has_seed);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(r.sampling.presence_penalty, 0.5f);
  EXPECT_EQ(r.sampling.frequency_penalty, -1.0f);
  EXPECT_EQ(r.sampling.repetition_penalty, 1.2f);
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.sampling.top_logprobs, 2);
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
}

TEST(OpenAiRequest, TokenPromptAndNegativeSeed) {
  const ApiRequest r = parse_api_request(Route::kCompletions, R"({"prompt": [1, 2, 3], "seed": -1, "stop": "x"})");
  EXPECT_FALSE(r.prompt_text);
  EXPECT_EQ(r.prompt_ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(r.sampling.seed, ~uint64_t{0});
  EXPECT_EQ(r.stop, std::vector<std::string>{"x"});
  EXPECT_FALSE(r.max_tokens);
  EXPECT_FALSE(r.stream);
}

TEST(OpenAiRequest, NullMeansNotGiven) {
  const ApiRequest r = parse_api_request(Route::kCompletions, R"({"prompt": "p", "temperature": null, "stop": null})");
  EXPECT_EQ(r.sampling.temperature, SamplingParams{}.temperature);
  EXPECT_TRUE(r.stop.empty());
}

TEST(OpenAiRequest, ChatMessagesAndLogprobs) {
  const ApiRequest r = parse_api_request(Route::kChat, R"({
    "messages": [{"role": "developer", "content": "be brief"},
                 {"role": "user", "content": [{"type": "text", "text": "hi "}, {"type": "text", "text": "there"}]},
                 {"role": "assistant", "content": null}],
    "logprobs": true, "top_logprobs": 5, "max_completion_tokens": 9, "max_tokens": 100})");
  ASSERT_EQ(r.messages.size(), 3u);
  EXPECT_EQ(r.messages[0].role, "system");
  EXPECT_EQ(r.messages[1].content, "hi there");
  EXPECT_EQ(r.messages[2].content, "");
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.sampling.top_logprobs, 5);
  EXPECT_EQ(r.max_tokens, 9);  // max_completion_tokens wins
}

TEST(OpenAiRequest, MalformedJsonIsA400) {
  const ApiError e = rejection(Route::kCompletions, R"({"prompt": "hi",)");
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.code, "invalid_json");
  EXPECT_NE(e.message.find("not valid JSON"), std::string::npos) << e.message;
  EXPECT_EQ(e.message.find("json.exception"), std::string::npos) << e.message;
  EXPECT_EQ(rejection(Route::kCompletions, "[1, 2]").code, "invalid_json");
}

TEST(OpenAiRequest, WrongTypesNameTheField) {
  struct Case {
    const char* body;
    const char* param;
  };
  for (const Case& c :
       {Case{R"({"prompt": "p", "temperature": "hot"})", "temperature"},
        Case{R"({"prompt": "p", "max_tokens": 1.5})", "max_tokens"},
        Case{R"({"prompt": "p", "stream": "yes"})", "stream"}, Case{R"({"prompt": "p", "stop": 3})", "stop"},
        Case{R"({"prompt": "p", "stop": ["a", 1]})", "stop[1]"}, Case{R"({"prompt": ["a", 1]})", "prompt"},
        Case{R"({"prompt": [1, "a"]})", "prompt[1]"}, Case{R"({"prompt": {"text": "p"}})", "prompt"},
        Case{R"({"prompt": "p", "model": 3})", "model"}, Case{R"({"prompt": "p", "seed": 1.5})", "seed"},
        Case{R"({"prompt": "p", "stream_options": true})", "stream_options"}}) {
    const ApiError e = rejection(Route::kCompletions, c.body);
    EXPECT_EQ(e.status, 400) << c.body;
    EXPECT_EQ(e.param, c.param) << c.body;
    EXPECT_NE(e.message.find(c.param), std::string::npos) << e.message;
  }
  const ApiError e = rejection(Route::kChat, R"({"messages": [{"role": "user", "content": 5}]})");
  EXPECT_EQ(e.param, "messages[0].content");
  EXPECT_EQ(e.message, "'messages[0].content' must be a string or an array of text parts, got an integer (5)");
}

TEST(OpenAiRequest, OutOfRangeNamesFieldValueAndRange) {
  ApiError e = rejection(Route::kCompletions, R"({"prompt": "p", "top_p": 1.5})");
  EXPECT_EQ(e.param, "top_p");
  EXPECT_EQ(e.message, "sampling parameter top_p is 1.5 but must be in (0, 1] (1 = off)");
  e = rejection(Route::kCompletions, R"({"prompt": "p", "temperature": -1})");
  EXPECT_EQ(e.param, "temperature");
  EXPECT_NE(e.message.find("-1"), std::string::npos);
  e = rejection(Route::kCompletions, R"({"prompt": "p", "max_tokens": 0})");
  EXPECT_EQ(e.param, "max_tokens");
  EXPECT_EQ(e.message, "'max_tokens' is 0 but must be >= 1");
  e = rejection(Route::kCompletions, R"({"prompt": "p", "logprobs": 21})");
  EXPECT_EQ(e.param, "logprobs");
  EXPECT_EQ(e.message, "'logprobs' is 21 but must be in [0, 20]");
  e = rejection(Route::kChat, R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 3})");
  EXPECT_EQ(e.param, "top_logprobs");
  e = rejection(Route::kCompletions, R"({"prompt": "p", "frequency_penalty": 2.5})");
  EXPECT_EQ(e.param, "frequency_penalty");
  e = rejection(Route::kCompletions, R"({"prompt": "p", "stop": ""})");
  EXPECT_EQ(e.param, "stop");
}

TEST(OpenAiRequest, FeaturesWeDoNotHaveAreRefused) {
  EXPECT_EQ(rejection(Route::kCompletions, R"({"prompt": "p", "n": 2})").param, "n");
  EXPECT_EQ(rejection(Route::kCompletions, R"({"prompt": "p", "echo": true})").param, "echo");
  EXPECT_EQ(rejection(Route::kCompletions, R"({"prompt": "p", "best_of": 3})").param, "best_of");
  EXPECT_EQ(rejection(Route::kCompletions, R"({"prompt": "p", "logit_bias": {"5": 1}})").param, "logit_bias");
  EXPECT_EQ(rejection(Route::kCompletions, R"({"prompt": ["a", "b"]})").param, "prompt");
  EXPECT_EQ(rejection(Route::kChat, R"({"messages": [{"role": "user", "content": "x"}], "tools": [{}]})").param,
            "tools");
  EXPECT_EQ(rejection(Route::kChat, R"({"messages": [{"role": "tool", "content": "x"}]})").param, "messages[0].role");
  EXPECT_EQ(rejection(Route::kChat, R"({"messages": []})").param, "messages");
  EXPECT_EQ(rejection(Route::kChat, R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})").param,
            "messages[0].content[0].type");
  EXPECT_EQ(rejection(Route::kCompletions, R"({"max_tokens": 3})").param, "prompt");
  EXPECT_EQ(rejection(Route::kChat, R"({"prompt": "p"})").param, "messages");
}

TEST(OpenAiResponse, ErrorBodyHasTheFourFields) {
  const json j = json::parse(error_body(ApiError(404, "no such model", "model", "model_not_found")));
  EXPECT_EQ(j["error"]["message"], "no such model");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_EQ(j["error"]["param"], "model");
  EXPECT_EQ(j["error"]["code"], "model_not_found");
  const json k = json::parse(error_body(ApiError(500, "boom")));
  EXPECT_EQ(k["error"]["type"], "server_error");
  EXPECT_TRUE(k["error"]["param"].is_null());
  EXPECT_TRUE(k["error"]["code"].is_null());
}

TEST(OpenAiResponse, LibraryErrorsMapToStatuses) {
  EXPECT_EQ(api_error_from(Error(ErrorCode::kResourceExhausted, "requests", "queue full")).status, 429);
  EXPECT_EQ(api_error_from(Error(ErrorCode::kInvalidArgument, "requests", "bad")).status, 400);
  EXPECT_EQ(api_error_from(Error(ErrorCode::kUnavailable, "requests", "stopping")).status, 503);
  EXPECT_EQ(api_error_from(Error(ErrorCode::kInternal, "requests", "bug")).status, 500);
}

GenerationResult result_of(std::string text, std::vector<int32_t> tokens, std::string finish) {
  GenerationResult r;
  r.text = std::move(text);
  r.tokens = std::move(tokens);
  r.finish_reason = std::move(finish);
  return r;
}

// Splits "data: ...\n\n" events.
std::vector<std::string> events(const std::string& sse) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < sse.size()) {
    EXPECT_EQ(sse.compare(at, 6, "data: "), 0) << sse.substr(at);
    const size_t end = sse.find("\n\n", at);
    EXPECT_NE(end, std::string::npos);
    out.push_back(sse.substr(at + 6, end - at - 6));
    at = end + 2;
  }
  return out;
}

TEST(OpenAiResponse, CompletionBody) {
  ResponseInfo info{Route::kCompletions, "cmpl-1", 123, "m", nullptr, false, 4};
  const json j = json::parse(response_body(info, result_of("abc", {7, 8, 9}, "length")));
  EXPECT_EQ(j["id"], "cmpl-1");
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["created"], 123);
  EXPECT_EQ(j["model"], "m");
  EXPECT_EQ(j["choices"][0]["text"], "abc");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"], json({{"prompt_tokens", 4}, {"completion_tokens", 3}, {"total_tokens", 7}}));
}

TEST(OpenAiResponse, ChatStreamEvents) {
  ResponseInfo info{Route::kChat, "chatcmpl-1", 5, "m", nullptr, false, 2};
  StreamEncoder enc(info, /*include_usage=*/true);
  const std::vector<std::string> first = events(enc.start());
  ASSERT_EQ(first.size(), 1u);
  const json role = json::parse(first[0]);
  EXPECT_EQ(role["object"], "chat.completion.chunk");
  EXPECT_EQ(role["choices"][0]["delta"]["role"], "assistant");

  StreamChunk held;  // a token whose text is held back: nothing to send
  held.tokens = {3};
  EXPECT_EQ(enc.chunk(held), "");
  StreamChunk piece;
  piece.text = "Hi";
  piece.tokens = {4};
  const json delta = json::parse(events(enc.chunk(piece)).at(0));
  EXPECT_EQ(delta["choices"][0]["delta"]["content"], "Hi");
  EXPECT_TRUE(delta["choices"][0]["finish_reason"].is_null());

  const std::vector<std::string> last = events(enc.finish(result_of("Hi", {3, 4}, "stop")));
  ASSERT_EQ(last.size(), 3u);
  EXPECT_EQ(json::parse(last[0])["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(json::parse(last[0])["choices"][0]["delta"], json::object());
  const json usage = json::parse(last[1]);
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["total_tokens"], 4);
  EXPECT_EQ(last[2], "[DONE]");

  const std::vector<std::string> failed = events(StreamEncoder::error(ApiError(500, "broke")));
  ASSERT_EQ(failed.size(), 2u);
  EXPECT_EQ(json::parse(failed[0])["error"]["message"], "broke");
  EXPECT_EQ(failed[1], "[DONE]");
}

TEST(OpenAiResponse, CompletionStreamWithoutUsage) {
  ResponseInfo info{Route::kCompletions, "cmpl-2", 5, "m", nullptr, false, 2};
  StreamEncoder enc(info, /*include_usage=*/false);
  EXPECT_EQ(enc.start(), "");
  const std::vector<std::string> last = events(enc.finish(result_of("", {1}, "length")));
  ASSERT_EQ(last.size(), 2u);
  EXPECT_FALSE(json::parse(last[0]).contains("usage"));
  EXPECT_EQ(last[1], "[DONE]");
}

TEST(ServerKeys, ConstantTimeComparisonIsStillAComparison) {
  EXPECT_TRUE(keys_equal("secret", "secret"));
  EXPECT_FALSE(keys_equal("secreT", "secret"));
  EXPECT_FALSE(keys_equal("secret1", "secret"));
  EXPECT_FALSE(keys_equal("secre", "secret"));
  EXPECT_FALSE(keys_equal("", "secret"));
  EXPECT_FALSE(keys_equal(std::string("secret\0", 7), "secret"));
}

TEST(Metrics, PrometheusExposition) {
  RequestManagerStats s;
  s.queued = 2;
  s.running = 3;
  s.kv_pages_used = 10;
  s.kv_pages_cached = 4;
  s.requests_finished = 5;
  s.generated_tokens = 77;
  s.ttft.observe(0.003);
  s.ttft.observe(0.2);
  ResponseCounters responses;
  responses.add(200);
  responses.add(200);
  responses.add(429);
  const std::string text = render_metrics(s, responses, 1);
  for (const char* line :
       {"batch_forge_queue_depth 2\n", "batch_forge_running_sequences 3\n", "batch_forge_kv_pages_used 10\n",
        "batch_forge_kv_pages_cached 4\n", "batch_forge_requests_total{outcome=\"finished\"} 5\n",
        "batch_forge_generated_tokens_total 77\n", "batch_forge_http_responses_total{code=\"200\"} 2\n",
        "batch_forge_http_responses_total{code=\"429\"} 1\n",
        "# TYPE batch_forge_time_to_first_token_seconds histogram\n",
        "batch_forge_time_to_first_token_seconds_bucket{le=\"0.0025\"} 0\n",
        "batch_forge_time_to_first_token_seconds_bucket{le=\"0.005\"} 1\n",
        "batch_forge_time_to_first_token_seconds_bucket{le=\"0.25\"} 2\n",
        "batch_forge_time_to_first_token_seconds_bucket{le=\"+Inf\"} 2\n",
        "batch_forge_time_to_first_token_seconds_sum 0.203\n", "batch_forge_time_to_first_token_seconds_count 2\n",
        "batch_forge_inter_token_latency_seconds_count 0\n"})
    EXPECT_NE(text.find(line), std::string::npos) << line;
}

}  // namespace
}  // namespace bf::server
