#include "batch_forge/text/chat_template.h"

#include <variant>

#include "batch_forge/core/error.h"
#include "text/jinja_lexer.h"

namespace bf {
namespace {

namespace jinja = text::jinja;

constexpr std::string_view kImStart = "<|im_start|>";
constexpr std::string_view kImEnd = "<|im_end|>";
constexpr std::string_view kSupportedForms =
    "supported is the ChatML form: per message '<|im_start|>' + role + '\\n' + content + '<|im_end|>\\n' inside "
    "'{% for message in messages %}', optionally preceded by a default system message "
    "'<|im_start|>system\\n...<|im_end|>\\n' under '{% if loop.first and messages[0]['role'] != 'system' %}' "
    "(or '{% if messages[0]['role'] != 'system' %}' before the loop), optionally followed by "
    "'{% if add_generation_prompt %}' '<|im_start|>assistant\\n' '{% endif %}'";

[[noreturn]] void unsupported(std::string_view what) {
  throw Error(ErrorCode::kUnsupported, "chat", cat("chat template: ", what, "; ", kSupportedForms));
}

// The template reduced to what it outputs and how it branches: literal text (adjacent pieces
// merged), the message fields it prints, and its statements in canonical spelling.
struct Literal {
  std::string text;
};
struct Field {
  std::string name;  // "role" or "content"
};
struct Statement {
  std::string canonical;
};
// An output expression other than strings and message fields joined by '+'; no form has one.
struct Opaque {
  std::string source;
};
using Element = std::variant<Literal, Field, Statement, Opaque>;

std::string canonical_statement(std::string_view code) { return jinja::canonical(jinja::tokenize(code)); }

std::string describe(const Element& e) {
  if (const auto* l = std::get_if<Literal>(&e))
    return cat("text '", jinja::canonical({{jinja::TokenKind::kString, l->text}}), "'");
  if (const auto* f = std::get_if<Field>(&e)) return cat("message['", f->name, "']");
  if (const auto* o = std::get_if<Opaque>(&e))
    return cat("'{{ ", o->source, " }}' (only strings, message['role'] and message['content'] joined by '+' are read)");
  return cat("'{% ", std::get<Statement>(e).canonical, " %}'");
}

// Appends an output expression as literals and fields when it is a '+'-joined list of string
// literals and message['role'] / message['content'], else as one Opaque element.
void append_output(const std::string& expr, std::vector<Element>& out) {
  const std::vector<jinja::Token> tokens = jinja::tokenize(expr);
  const auto is_op = [&](size_t k, std::string_view op) {
    return k < tokens.size() && tokens[k].kind == jinja::TokenKind::kOperator && tokens[k].text == op;
  };
  std::vector<Element> parts;
  for (size_t i = 0;;) {
    if (i < tokens.size() && tokens[i].kind == jinja::TokenKind::kString) {
      parts.push_back(Literal{tokens[i].text});
      i += 1;
    } else if (i + 3 < tokens.size() && tokens[i].kind == jinja::TokenKind::kName && tokens[i].text == "message" &&
               is_op(i + 1, "[") && tokens[i + 2].kind == jinja::TokenKind::kString && is_op(i + 3, "]") &&
               (tokens[i + 2].text == "role" || tokens[i + 2].text == "content")) {
      parts.push_back(Field{tokens[i + 2].text});
      i += 4;
    } else {
      break;
    }
    if (i == tokens.size()) {
      out.insert(out.end(), parts.begin(), parts.end());
      return;
    }
    if (!is_op(i, "+")) break;
    ++i;
  }
  std::string source(expr);
  source.erase(0, source.find_first_not_of(" \t\n"));
  source.erase(source.find_last_not_of(" \t\n") + 1);
  out.push_back(Opaque{source});
}

std::vector<Element> reduce(std::string_view source) {
  std::vector<Element> out;
  for (const jinja::Segment& s : jinja::lex(source)) {
    switch (s.kind) {
      case jinja::SegmentKind::kText: out.push_back(Literal{s.text}); break;
      case jinja::SegmentKind::kOutput: append_output(s.text, out); break;
      case jinja::SegmentKind::kStatement: out.push_back(Statement{canonical_statement(s.text)}); break;
    }
  }
  std::vector<Element> merged;
  for (Element& e : out) {
    if (auto* l = std::get_if<Literal>(&e)) {
      if (l->text.empty()) continue;
      if (!merged.empty())
        if (auto* prev = std::get_if<Literal>(&merged.back())) {
          prev->text += l->text;
          continue;
        }
    }
    merged.push_back(std::move(e));
  }
  return merged;
}

// Walks the reduced template, failing with what was expected where it deviates.
class FormMatcher {
 public:
  explicit FormMatcher(std::vector<Element> elements) : elements_(std::move(elements)) {}

  bool at_end() const { return pos_ == elements_.size(); }

  bool next_is_statement(std::string_view canonical) const {
    if (at_end()) return false;
    const auto* s = std::get_if<Statement>(&elements_[pos_]);
    return s && s->canonical == canonical;
  }
  bool next_is_any_statement(const std::vector<std::string>& canonicals) const {
    for (const auto& c : canonicals)
      if (next_is_statement(c)) return true;
    return false;
  }

  void expect_statement(std::string_view canonical) {
    if (!next_is_statement(canonical)) deviation(cat("'{% ", canonical, " %}'"));
    ++pos_;
  }
  void expect_literal(std::string_view text) {
    const auto* l = at_end() ? nullptr : std::get_if<Literal>(&elements_[pos_]);
    if (!l || l->text != text)
      deviation(cat("text '", jinja::canonical({{jinja::TokenKind::kString, std::string(text)}}), "'"));
    ++pos_;
  }
  void expect_field(std::string_view name) {
    const auto* f = at_end() ? nullptr : std::get_if<Field>(&elements_[pos_]);
    if (!f || f->name != name) deviation(cat("message['", name, "']"));
    ++pos_;
  }
  // The default system message inside "<|im_start|>system\n...<|im_end|>\n".
  std::string expect_system_block() {
    const auto* l = at_end() ? nullptr : std::get_if<Literal>(&elements_[pos_]);
    const std::string head = cat(kImStart, "system\n"), tail = cat(kImEnd, "\n");
    if (!l || !l->text.starts_with(head) || !l->text.ends_with(tail) || l->text.size() < head.size() + tail.size())
      deviation("a default system message '<|im_start|>system\\n...<|im_end|>\\n'");
    ++pos_;
    return l->text.substr(head.size(), l->text.size() - head.size() - tail.size());
  }
  void skip() { ++pos_; }

  [[noreturn]] void deviation(std::string_view expected) const {
    unsupported(cat("expected ", expected, " but found ", at_end() ? "the end" : describe(elements_[pos_])));
  }

 private:
  std::vector<Element> elements_;
  size_t pos_ = 0;
};

}  // namespace

ChatTemplate ChatTemplate::from_source(std::string_view jinja_source) {
  FormMatcher m(reduce(jinja_source));
  ChatTemplate t;
  const std::string endif = canonical_statement("endif");
  if (m.next_is_statement(canonical_statement("if messages[0]['role'] != 'system'"))) {
    m.skip();
    t.default_system_ = m.expect_system_block();
    m.expect_statement(endif);
  }
  m.expect_statement(canonical_statement("for message in messages"));
  const std::vector<std::string> first_not_system = {
      canonical_statement("if loop.first and messages[0]['role'] != 'system'"),
      canonical_statement("if messages[0]['role'] != 'system' and loop.first"),
      canonical_statement("if loop.first and message['role'] != 'system'"),
      canonical_statement("if message['role'] != 'system' and loop.first"),
  };
  if (m.next_is_any_statement(first_not_system)) {
    if (t.default_system_) unsupported("the template inserts a default system message twice");
    m.skip();
    t.default_system_ = m.expect_system_block();
    m.expect_statement(endif);
  }
  m.expect_literal(kImStart);
  m.expect_field("role");
  m.expect_literal("\n");
  m.expect_field("content");
  m.expect_literal(cat(kImEnd, "\n"));
  m.expect_statement(canonical_statement("endfor"));
  t.has_generation_prompt_ = false;
  if (m.next_is_statement(canonical_statement("if add_generation_prompt"))) {
    m.skip();
    m.expect_literal(cat(kImStart, "assistant\n"));
    m.expect_statement(endif);
    t.has_generation_prompt_ = true;
  }
  if (!m.at_end()) m.deviation("the end of the template");
  return t;
}

ChatTemplate ChatTemplate::chatml() { return ChatTemplate(); }

std::string ChatTemplate::render(std::span<const ChatMessage> messages, bool add_generation_prompt) const {
  std::string out;
  if (default_system_ && !messages.empty() && messages.front().role != "system")
    out += cat(kImStart, "system\n", *default_system_, kImEnd, "\n");
  for (const ChatMessage& m : messages) out += cat(kImStart, m.role, "\n", m.content, kImEnd, "\n");
  if (add_generation_prompt && has_generation_prompt_) out += cat(kImStart, "assistant\n");
  return out;
}

std::vector<std::string> ChatTemplate::stop_strings() const { return {std::string(kImEnd)}; }

}  // namespace bf
