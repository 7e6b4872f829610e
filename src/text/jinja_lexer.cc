#include "text/jinja_lexer.h"

#include <cctype>

#include "batch_forge/core/error.h"

namespace bf::text::jinja {
namespace {

[[noreturn]] void malformed(std::string_view what) {
  throw Error(ErrorCode::kInvalidFile, "chat", cat("chat template: ", what));
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// End of the string literal that starts at code[i] (a quote), just past the closing quote.
size_t skip_string(std::string_view code, size_t i) {
  const char quote = code[i];
  for (size_t k = i + 1; k < code.size(); ++k) {
    if (code[k] == '\\')
      ++k;
    else if (code[k] == quote)
      return k + 1;
  }
  malformed(cat("string starting at byte ", i, " is never closed"));
}

}  // namespace

std::vector<Segment> lex(std::string_view src) {
  std::vector<Segment> out;
  size_t pos = 0;
  bool strip_leading = false;  // the previous tag ended with '-'
  bool trim_newline = false;   // the previous tag was a block or comment tag (trim_blocks)
  bool at_source_start = true;
  while (pos <= src.size()) {
    // The next tag opener.
    size_t open = pos;
    char kind = 0;
    for (; open + 1 < src.size(); ++open) {
      if (src[open] == '{' && (src[open + 1] == '{' || src[open + 1] == '%' || src[open + 1] == '#')) {
        kind = src[open + 1];
        break;
      }
    }
    if (!kind) open = src.size();
    const std::string_view raw = src.substr(pos, open - pos);
    const bool block_tag = kind == '%' || kind == '#';
    const char mark = kind && open + 2 < src.size() ? src[open + 2] : '\0';

    size_t begin = 0, end = raw.size();
    if (trim_newline) {
      if (raw.starts_with("\n"))
        begin = 1;
      else if (raw.starts_with("\r\n"))
        begin = 2;
    }
    if (strip_leading)
      while (begin < end && is_space(raw[begin])) ++begin;
    if (kind && mark == '-') {
      while (end > begin && is_space(raw[end - 1])) --end;
    } else if (block_tag && mark != '+') {
      // lstrip_blocks: only when nothing but spaces and tabs stands between the line start and the tag.
      const size_t nl = raw.rfind('\n');
      const size_t tail = nl == std::string_view::npos ? 0 : nl + 1;
      const bool line_start = nl != std::string_view::npos || at_source_start;
      if (line_start && raw.find_first_not_of(" \t", tail) == std::string_view::npos) end = std::max(begin, tail);
    }
    if (begin < end) out.push_back(Segment{SegmentKind::kText, std::string(raw.substr(begin, end - begin))});
    if (!kind) break;
    at_source_start = false;

    // The tag's inside, up to its closer; strings may contain the closer.
    const std::string_view closer = kind == '{' ? "}}" : kind == '%' ? "%}" : "#}";
    size_t close = std::string_view::npos;
    for (size_t k = open + 2; k < src.size();) {
      if (kind != '#' && (src[k] == '\'' || src[k] == '"')) {
        k = skip_string(src, k);
      } else if (src.compare(k, 2, closer) == 0) {
        close = k;
        break;
      } else {
        ++k;
      }
    }
    if (close == std::string_view::npos) malformed(cat("tag opened at byte ", open, " is never closed"));
    std::string_view inner = src.substr(open + 2, close - open - 2);
    if (!inner.empty() && (inner.front() == '-' || inner.front() == '+')) inner.remove_prefix(1);
    const char end_mark = inner.empty() ? '\0' : inner.back();
    if (end_mark == '-' || end_mark == '+') inner.remove_suffix(1);
    strip_leading = end_mark == '-';
    trim_newline = block_tag && end_mark != '+';
    if (kind == '{')
      out.push_back(Segment{SegmentKind::kOutput, std::string(inner)});
    else if (kind == '%')
      out.push_back(Segment{SegmentKind::kStatement, std::string(inner)});
    pos = close + 2;
  }
  return out;
}

std::vector<Token> tokenize(std::string_view code) {
  std::vector<Token> out;
  for (size_t i = 0; i < code.size();) {
    const char c = code[i];
    if (is_space(c)) {
      ++i;
    } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t j = i + 1;
      while (j < code.size() && (std::isalnum(static_cast<unsigned char>(code[j])) || code[j] == '_')) ++j;
      out.push_back(Token{TokenKind::kName, std::string(code.substr(i, j - i))});
      i = j;
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      size_t j = i + 1;
      while (j < code.size() && std::isdigit(static_cast<unsigned char>(code[j]))) ++j;
      out.push_back(Token{TokenKind::kNumber, std::string(code.substr(i, j - i))});
      i = j;
    } else if (c == '\'' || c == '"') {
      const size_t end = skip_string(code, i);
      std::string value;
      for (size_t k = i + 1; k + 1 < end; ++k) {
        if (code[k] != '\\') {
          value += code[k];
          continue;
        }
        const char e = code[++k];
        switch (e) {
          case 'n': value += '\n'; break;
          case 't': value += '\t'; break;
          case 'r': value += '\r'; break;
          case '\\':
          case '\'':
          case '"': value += e; break;
          default:
            value += '\\';
            value += e;
            break;  // Python keeps unknown escapes as written
        }
      }
      out.push_back(Token{TokenKind::kString, std::move(value)});
      i = end;
    } else {
      static constexpr std::string_view kTwoChar[] = {"==", "!=", "<=", ">=", "**", "//"};
      size_t len = 1;
      for (const auto op : kTwoChar)
        if (code.compare(i, 2, op) == 0) len = 2;
      out.push_back(Token{TokenKind::kOperator, std::string(code.substr(i, len))});
      i += len;
    }
  }
  // a.b → a['b']
  std::vector<Token> canon;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i].kind == TokenKind::kOperator && out[i].text == "." && i + 1 < out.size() &&
        out[i + 1].kind == TokenKind::kName) {
      canon.push_back(Token{TokenKind::kOperator, "["});
      canon.push_back(Token{TokenKind::kString, out[i + 1].text});
      canon.push_back(Token{TokenKind::kOperator, "]"});
      ++i;
    } else {
      canon.push_back(std::move(out[i]));
    }
  }
  return canon;
}

std::string canonical(const std::vector<Token>& tokens) {
  std::string s;
  for (const Token& t : tokens) {
    if (!s.empty()) s += ' ';
    if (t.kind == TokenKind::kString) {
      s += '\'';
      for (const char c : t.text) {
        if (c == '\n')
          s += "\\n";
        else if (c == '\'' || c == '\\')
          (s += '\\') += c;
        else
          s += c;
      }
      s += '\'';
    } else {
      s += t.text;
    }
  }
  return s;
}

}  // namespace bf::text::jinja
