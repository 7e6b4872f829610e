// Bad tokenizer.json input and bad calls: each is a typed Error whose message names the source,
// the field and what was expected.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "batch_forge/core/error.h"
#include "batch_forge/text/tokenizer.h"

namespace bf {
namespace {

using nlohmann::json;

// A minimal valid byte-level tokenizer: "a", "b", "ab", "Ġ" with one merge.
json minimal() {
  return json::parse(R"({
    "version": "1.0",
    "added_tokens": [{"id": 4, "content": "<|im_end|>", "single_word": false, "lstrip": false,
                      "rstrip": false, "normalized": false, "special": true}],
    "normalizer": null,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
    "post_processor": null,
    "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
    "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
              "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
              "vocab": {"a": 0, "b": 1, "ab": 2, "\u0120": 3},
              "merges": ["a b"]}
  })");
}

// Runs from_json on `doc` and returns the error it throws.
Error load_error(const std::string& text) {
  try {
    Tokenizer::from_json(text, "bad.json");
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "expected an error for " << text.substr(0, 200);
  return Error(ErrorCode::kInternal, "test", "no error");
}
Error load_error(const json& doc) { return load_error(doc.dump()); }

void expect_error(const Error& e, ErrorCode code, std::initializer_list<std::string_view> parts) {
  EXPECT_EQ(e.code(), code) << e.what();
  EXPECT_EQ(e.component(), "tokenizer") << e.what();
  for (const auto part : parts)
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what() << "\n  lacks: " << part;
}

TEST(TokenizerErrors, MinimalTokenizerLoads) {
  const Tokenizer tok = Tokenizer::from_json(minimal().dump());
  EXPECT_EQ(tok.vocab_size(), 5);
  const std::vector<int32_t> want = {2, 3, 0, 4};
  EXPECT_EQ(tok.encode("ab a<|im_end|>"), want);
  EXPECT_EQ(tok.decode(want), "ab a<|im_end|>");
  EXPECT_EQ(tok.decode(want, /*skip_special=*/true), "ab a");
}

TEST(TokenizerErrors, MalformedJson) {
  expect_error(load_error(std::string("{\"model\": {\"type\": \"BPE\",")), ErrorCode::kInvalidFile,
               {"bad.json", "not valid JSON"});
  expect_error(load_error(std::string("[1, 2]")), ErrorCode::kInvalidFile, {"bad.json", "expected a JSON object"});
}

TEST(TokenizerErrors, MissingModel) {
  json doc = minimal();
  doc.erase("model");
  expect_error(load_error(doc), ErrorCode::kInvalidFile, {"bad.json", "\"model\""});
}

TEST(TokenizerErrors, UnknownModelType) {
  json doc = minimal();
  doc["model"]["type"] = "WordPiece";
  expect_error(load_error(doc), ErrorCode::kUnsupported, {"bad.json", "model", "WordPiece", "only BPE"});
}

TEST(TokenizerErrors, MergeWithUnknownToken) {
  json doc = minimal();
  doc["model"]["merges"] = {"a b", "a c"};
  expect_error(load_error(doc), ErrorCode::kInvalidFile, {"bad.json", "model.merges[1]", "'c'", "not in model.vocab"});
  doc["model"]["merges"] = {"b a"};  // "ba" is not in the vocabulary
  expect_error(load_error(doc), ErrorCode::kInvalidFile, {"model.merges[0]", "'ba'"});
  doc["model"]["merges"] = {"ab"};
  expect_error(load_error(doc), ErrorCode::kInvalidFile, {"model.merges[0]", "one space"});
  doc["model"]["merges"] = json::array({json::array({"a", "b"}), json::array({"a"})});
  expect_error(load_error(doc), ErrorCode::kInvalidFile, {"model.merges[1]", "pair"});
}

TEST(TokenizerErrors, BadVocabulary) {
  json doc = minimal();
  doc["model"]["vocab"] = json::array({"a", "b"});
  expect_error(load_error(doc), ErrorCode::kInvalidFile, {"model.vocab", "object"});
  doc = minimal();
  doc["model"]["vocab"]["c"] = 1;
  expect_error(load_error(doc), ErrorCode::kInvalidFile, {"model.vocab['c']", "id 1"});
  doc = minimal();
  doc["model"]["vocab"]["c"] = -3;
  expect_error(load_error(doc), ErrorCode::kInvalidFile, {"model.vocab['c']", "out of range"});
  doc = minimal();
  doc["model"]["unk_token"] = "<unk>";
  expect_error(load_error(doc), ErrorCode::kInvalidFile, {"model.unk_token", "<unk>"});
}

TEST(TokenizerErrors, UnsupportedComponents) {
  json doc = minimal();
  doc["pre_tokenizer"] = {{"type", "Whitespace"}};
  expect_error(load_error(doc), ErrorCode::kUnsupported, {"pre_tokenizer", "Whitespace"});

  doc = minimal();
  doc["pre_tokenizer"] = {
      {"type", "Split"}, {"pattern", {{"Regex", "\\w+"}}}, {"behavior", "Isolated"}, {"invert", false}};
  expect_error(load_error(doc), ErrorCode::kUnsupported, {"pre_tokenizer.pattern.Regex", "\\w+", "GPT-2"});

  doc = minimal();
  doc["normalizer"] = {{"type", "Lowercase"}};
  expect_error(load_error(doc), ErrorCode::kUnsupported, {"normalizer", "Lowercase"});

  doc = minimal();
  doc["normalizer"] = {{"type", "Replace"}, {"pattern", {{"Regex", " +"}}}, {"content", " "}};
  expect_error(load_error(doc), ErrorCode::kUnsupported, {"normalizer.pattern", "regex"});

  doc = minimal();
  doc["decoder"] = {{"type", "Sequence"}, {"decoders", {{{"type", "Fuse"}}, {{"type", "WordPiece"}}}}};
  expect_error(load_error(doc), ErrorCode::kUnsupported, {"decoder.decoders[1]", "WordPiece"});

  doc = minimal();
  doc["model"]["dropout"] = 0.1;
  expect_error(load_error(doc), ErrorCode::kUnsupported, {"model.dropout"});

  doc = minimal();
  doc["added_tokens"][0]["single_word"] = true;
  expect_error(load_error(doc), ErrorCode::kUnsupported, {"added_tokens[0].single_word", "<|im_end|>"});
}

TEST(TokenizerErrors, WrongFieldTypes) {
  json doc = minimal();
  doc["pre_tokenizer"]["add_prefix_space"] = "yes";
  expect_error(load_error(doc), ErrorCode::kInvalidFile, {"pre_tokenizer.add_prefix_space", "true or false"});
  doc = minimal();
  doc["added_tokens"][0].erase("content");
  expect_error(load_error(doc), ErrorCode::kInvalidFile, {"added_tokens[0]", "content"});
  doc = minimal();
  doc["decoder"] = {{"type", "Strip"}, {"content", "ab"}, {"start", 1}, {"stop", 0}};
  expect_error(load_error(doc), ErrorCode::kInvalidFile, {"decoder.content", "one character"});
}

TEST(TokenizerErrors, DecodeIdOutOfRange) {
  const Tokenizer tok = Tokenizer::from_json(minimal().dump(), "tiny.json");
  for (const int32_t bad : {5, -1, 1000000}) {
    const std::vector<int32_t> ids = {0, bad};
    try {
      tok.decode(ids);
      ADD_FAILURE() << "decode accepted id " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find(cat("token id ", bad, " is out of range [0, 5)")), std::string::npos)
          << e.what();
    }
    EXPECT_THROW(tok.token_bytes(bad), Error);
    EXPECT_FALSE(tok.is_special(bad));
  }
}

TEST(TokenizerErrors, EncodeRejectsInvalidUtf8) {
  const Tokenizer tok = Tokenizer::from_json(minimal().dump());
  try {
    tok.encode("ab\xC3(");
    ADD_FAILURE() << "encode accepted invalid UTF-8";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("byte 2"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace bf
