// Just enough of Jinja's lexer to read chat templates: splits the source into text, {{ output }}
// and {% statement %} segments (comments dropped) with Jinja's whitespace handling, and splits a
// tag's inside into tokens. There is no evaluator: chat_template.cc matches the result against
// the template forms it knows.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace bf::text::jinja {

enum class SegmentKind { kText, kOutput, kStatement };

struct Segment {
  SegmentKind kind;
  std::string text;  // literal text, or the inside of the tag without delimiters and '-'/'+' marks
};

// Whitespace as transformers renders chat templates: trim_blocks (the newline right after a
// {% %} or {# #} tag is dropped), lstrip_blocks (spaces and tabs from the start of a line up to such
// a tag are dropped), and '-' inside a delimiter strips all whitespace on that side. Throws
// Error(kInvalidFile, "chat") for an unclosed tag or string.
std::vector<Segment> lex(std::string_view source);

enum class TokenKind { kName, kString, kNumber, kOperator };

struct Token {
  TokenKind kind;
  std::string text;  // for kString the value, escapes resolved
  bool operator==(const Token&) const = default;
};

// Tokens of an expression or statement. `a.b` comes out as `a [ 'b' ]`, so both spellings of an
// attribute compare equal. Throws Error(kInvalidFile, "chat") for an unterminated string.
std::vector<Token> tokenize(std::string_view code);

// Tokens as one canonical string (strings single-quoted): "messages [ 0 ] [ 'role' ] != 'system'".
std::string canonical(const std::vector<Token>& tokens);

}  // namespace bf::text::jinja
