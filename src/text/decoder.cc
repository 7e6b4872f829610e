#include "text/decoder.h"

#include <optional>

#include "text/normalizer.h"
#include "text/pre_tokenizer.h"
#include "text/unicode.h"

namespace bf::text {
namespace {

constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

// Byte-level tokens back to bytes; a token with a character outside the byte alphabet (an added
// token such as "<|im_end|>" written with characters above U+00FF) is taken verbatim.
std::string unmap_byte_level(const std::string& token) {
  std::string bytes;
  bytes.reserve(token.size());
  char32_t cp;
  for (size_t i = 0; i < token.size();) {
    const size_t n = decode_utf8(token, i, &cp);
    const std::optional<uint8_t> b = n > 0 ? char_to_byte(cp) : std::nullopt;
    if (!b) return token;
    bytes += static_cast<char>(*b);
    i += n;
  }
  return bytes;
}

class ByteLevelDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const std::string& t : tokens) bytes += unmap_byte_level(t);
    tokens.assign(1, utf8_lossy(bytes));
  }
  void raw_token(std::string& token, bool& joined) const override {
    token = unmap_byte_level(token);
    joined = true;
  }
};

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// "<0xAB>" → 0xAB. The two characters are parsed as Rust's u8::from_str_radix(_, 16) parses them,
// which also takes a leading '+' ("<0x+F>" is byte 0x0F), to stay identical to Hugging Face.
std::optional<uint8_t> byte_token(std::string_view t) {
  if (t.size() != 6 || !t.starts_with("<0x") || t[5] != '>') return std::nullopt;
  const int hi = hex_digit(t[3]), lo = hex_digit(t[4]);
  if (hi >= 0 && lo >= 0) return static_cast<uint8_t>(hi * 16 + lo);
  if (t[3] == '+' && lo >= 0) return static_cast<uint8_t>(lo);
  return std::nullopt;
}

class ByteFallbackDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    out.reserve(tokens.size());
    std::string pending;  // consecutive byte tokens
    const auto flush = [&] {
      if (pending.empty()) return;
      // A run that is not valid UTF-8 becomes one U+FFFD per byte (not per maximal subpart).
      if (find_invalid_utf8(pending)) {
        std::string r;
        for (size_t i = 0; i < pending.size(); ++i) r += kReplacementChar;
        out.push_back(std::move(r));
      } else {
        out.push_back(pending);
      }
      pending.clear();
    };
    for (std::string& t : tokens) {
      if (const auto b = byte_token(t)) {
        pending += static_cast<char>(*b);
        continue;
      }
      flush();
      out.push_back(std::move(t));
    }
    flush();
    tokens = std::move(out);
  }
  void raw_token(std::string& token, bool&) const override {
    if (const auto b = byte_token(token)) token.assign(1, static_cast<char>(*b));
  }
};

class FuseDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const std::string& t : tokens) all += t;
    tokens.clear();
    tokens.push_back(std::move(all));
  }
  void raw_token(std::string&, bool& joined) const override { joined = true; }
};

class StripDecoder final : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}

  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens) strip(t);
  }
  void raw_token(std::string& token, bool& joined) const override {
    if (!joined) strip(token);
  }

 private:
  // Up to start_ leading and stop_ trailing copies of the content character.
  void strip(std::string& t) const {
    size_t begin = 0, end = t.size();
    for (size_t i = 0; i < start_ && t.compare(begin, content_.size(), content_) == 0; ++i) begin += content_.size();
    for (size_t i = 0; i < stop_ && end >= begin + content_.size() &&
                       t.compare(end - content_.size(), content_.size(), content_) == 0;
         ++i)
      end -= content_.size();
    t = t.substr(begin, end - begin);
  }

  std::string content_;
  size_t start_, stop_;
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(std::string pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens) t = replace_all(t, pattern_, content_);
  }
  void raw_token(std::string& token, bool&) const override { token = replace_all(token, pattern_, content_); }

 private:
  std::string pattern_, content_;
};

class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool drop_in_first)
      : replacement_(std::move(replacement)), drop_in_first_(drop_in_first) {}

  // Hugging Face drops every replacement character of the first token (not only a leading one)
  // unless the prepend scheme is "never"; elsewhere each becomes a space.
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i)
      tokens[i] = replace_all(tokens[i], replacement_, i == 0 && drop_in_first_ ? "" : " ");
  }
  void raw_token(std::string& token, bool&) const override { token = replace_all(token, replacement_, " "); }

 private:
  std::string replacement_;
  bool drop_in_first_;
};

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& step : steps_) step->decode_chain(tokens);
  }
  void raw_token(std::string& token, bool& joined) const override {
    for (const auto& step : steps_) step->raw_token(token, joined);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

std::string one_char(const JsonField& f) {
  std::string s = f.string();
  if (find_invalid_utf8(s) || decode_text(s).cps.size() != 1) f.fail(cat("expected one character, got '", s, "'"));
  return s;
}

size_t count(const JsonField& f) {
  const int64_t v = f.integer();
  if (v < 0) f.fail(cat("expected a non-negative count, got ", v));
  return static_cast<size_t>(v);
}

}  // namespace

std::unique_ptr<Decoder> make_decoder(const JsonField& config) {
  const std::string type = component_type(config);
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip")
    return std::make_unique<StripDecoder>(one_char(config.at("content")), count(config.at("start")),
                                          count(config.at("stop")));
  if (type == "Replace") {
    std::string content = config.at("content").string();
    if (find_invalid_utf8(content)) config.at("content").fail("is not valid UTF-8");
    return std::make_unique<ReplaceDecoder>(literal_pattern(config.at("pattern"), "Replace decoder"),
                                            std::move(content));
  }
  if (type == "Metaspace") {
    bool drop_in_first = true;
    if (const auto f = config.maybe("prepend_scheme")) {
      const std::string s = f->string();
      if (s != "always" && s != "never" && s != "first")
        f->fail(cat("unknown prepend_scheme '", s, "'; expected always, never or first"));
      drop_in_first = s != "never";
    } else {
      drop_in_first = config.bool_or("add_prefix_space", true);
    }
    return std::make_unique<MetaspaceDecoder>(one_char(config.at("replacement")), drop_in_first);
  }
  if (type == "Sequence") {
    const JsonField list = config.at("decoders");
    std::vector<std::unique_ptr<Decoder>> steps;
    for (size_t i = 0; i < list.array_size(); ++i) steps.push_back(make_decoder(list[i]));
    return std::make_unique<SequenceDecoder>(std::move(steps));
  }
  config.unsupported(cat("decoder type '", type,
                         "' is not implemented; supported: ByteLevel, ByteFallback, Fuse, Strip, Replace, Metaspace, "
                         "Sequence"));
}

}  // namespace bf::text
