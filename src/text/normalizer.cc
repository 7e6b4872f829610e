#include "text/normalizer.h"

#include <vector>

#include "text/unicode.h"

namespace bf::text {
namespace {

class NfcNormalizer final : public Normalizer {
 public:
  std::string normalize(std::string text) const override { return nfc(text); }
};

class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(std::string pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  std::string normalize(std::string text) const override { return replace_all(text, pattern_, content_); }

 private:
  std::string pattern_, content_;
};

class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  std::string normalize(std::string text) const override {
    // Hugging Face leaves empty text empty.
    if (!text.empty()) text.insert(0, prefix_);
    return text;
  }

 private:
  std::string prefix_;
};

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  std::string normalize(std::string text) const override {
    for (const auto& step : steps_) text = step->normalize(std::move(text));
    return text;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

std::string valid_utf8_string(const JsonField& f) {
  std::string s = f.string();
  if (const auto bad = find_invalid_utf8(s)) f.fail(cat("is not valid UTF-8 at byte ", *bad));
  return s;
}

}  // namespace

std::string replace_all(std::string_view text, std::string_view pattern, std::string_view content) {
  std::string out;
  out.reserve(text.size());
  size_t last = 0;
  for (size_t at = text.find(pattern); at != std::string_view::npos; at = text.find(pattern, last)) {
    out.append(text.substr(last, at - last));
    out.append(content);
    last = at + pattern.size();
  }
  out.append(text.substr(last));
  return out;
}

std::string literal_pattern(const JsonField& pattern, std::string_view component) {
  if (const auto literal = pattern.maybe("String")) {
    std::string s = valid_utf8_string(*literal);
    if (s.empty()) literal->unsupported(cat("an empty ", component, " pattern is not supported"));
    return s;
  }
  if (pattern.has("Regex"))
    pattern.unsupported(cat(component, " with a regex pattern is not implemented; only {\"String\": ...}"));
  pattern.fail("expected {\"String\": ...} or {\"Regex\": ...}");
}

std::unique_ptr<Normalizer> make_normalizer(const JsonField& config) {
  const std::string type = component_type(config);
  if (type == "NFC") return std::make_unique<NfcNormalizer>();
  if (type == "Replace")
    return std::make_unique<ReplaceNormalizer>(literal_pattern(config.at("pattern"), "Replace normalizer"),
                                               valid_utf8_string(config.at("content")));
  if (type == "Prepend") return std::make_unique<PrependNormalizer>(valid_utf8_string(config.at("prepend")));
  if (type == "Sequence") {
    const JsonField list = config.at("normalizers");
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (size_t i = 0; i < list.array_size(); ++i) steps.push_back(make_normalizer(list[i]));
    return std::make_unique<SequenceNormalizer>(std::move(steps));
  }
  config.unsupported(
      cat("normalizer type '", type, "' is not implemented; supported: NFC, Replace, Prepend, Sequence"));
}

}  // namespace bf::text
