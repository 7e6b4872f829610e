#include "batch_forge/text/tokenizer.h"

#include <algorithm>
#include <map>
#include <set>

#include "batch_forge/core/error.h"
#include "batch_forge/core/log.h"
#include "text/added_tokens.h"
#include "text/bpe.h"
#include "text/decoder.h"
#include "text/json_fields.h"
#include "text/normalizer.h"
#include "text/pre_tokenizer.h"
#include "text/unicode.h"

namespace bf {
namespace text {

// Encoding runs Hugging Face's pipeline: cut out added tokens matched in the raw text; normalize
// each remaining stretch; cut out added tokens matched in the normalized text; pre-tokenize; BPE
// each piece.
struct TokenizerImpl {
  std::string source;
  BpeModel model;
  std::unique_ptr<Normalizer> normalizer;       // may be null
  std::unique_ptr<PreTokenizer> pre_tokenizer;  // may be null
  std::unique_ptr<Decoder> decoder;             // null: tokens joined by spaces

  std::vector<AddedToken> added;  // every added token, with the id it resolved to
  std::map<std::string, int32_t, std::less<>> added_ids;
  AddedTokenMatcher raw_matcher;         // tokens with normalized: false
  AddedTokenMatcher normalized_matcher;  // tokens with normalized: true, patterns normalized

  int32_t vocab_size = 0;
  std::vector<std::string> tokens;  // by id
  std::vector<uint8_t> has_token;   // by id: the id names a token (ids may have gaps)
  std::vector<uint8_t> special;     // by id

  void encode_stretch(std::string_view text, bool at_start, bool allow_special, std::vector<int32_t>& ids) const;
  void check_id(int32_t id) const;
};

std::unique_ptr<TokenizerImpl> build_tokenizer(std::string_view json_text, std::string_view source);

namespace {

Json parse_json(std::string_view text, std::string_view source) {
  try {
    return Json::parse(text);
  } catch (const Json::parse_error& e) {
    throw Error(ErrorCode::kInvalidFile, "tokenizer", cat(source, ": not valid JSON: ", e.what()));
  }
}

AddedToken parse_added_token(const JsonField& f, int32_t* declared_id) {
  AddedToken t;
  t.content = f.at("content").string();
  if (const auto bad = find_invalid_utf8(t.content)) f.at("content").fail(cat("is not valid UTF-8 at byte ", *bad));
  *declared_id = f.at("id").id();
  t.special = f.bool_or("special", false);
  t.lstrip = f.bool_or("lstrip", false);
  t.rstrip = f.bool_or("rstrip", false);
  t.normalized = f.bool_or("normalized", !t.special);
  if (f.bool_or("single_word", false))
    f.at("single_word")
        .unsupported(cat("added token '", t.content,
                         "' has single_word: true, which needs Unicode word boundaries that are not implemented"));
  return t;
}

bool same_token(const AddedToken& a, const AddedToken& b) {
  return a.content == b.content && a.special == b.special && a.lstrip == b.lstrip && a.rstrip == b.rstrip &&
         a.normalized == b.normalized;
}

// Ids are resolved as Hugging Face's AddedVocabulary::add_tokens does when it loads a file: a
// token already in the vocabulary keeps that id, a new one takes the next id after the vocabulary
// (the "id" written in the file is only checked, with a warning, as Hugging Face does).
void resolve_added_tokens(TokenizerImpl& t, const JsonField& list) {
  const size_t vocab_entries = t.model.vocab().size();
  std::vector<AddedToken> declared;
  std::vector<int32_t> declared_ids;
  std::set<std::string, std::less<>> special_contents;
  for (size_t i = 0; i < list.array_size(); ++i) {
    int32_t declared_id = 0;
    declared.push_back(parse_added_token(list[i], &declared_id));
    declared_ids.push_back(declared_id);
    if (declared.back().special && !declared.back().content.empty()) special_contents.insert(declared.back().content);
  }

  std::map<int32_t, AddedToken> by_id;  // the last declaration of an id wins
  for (size_t i = 0; i < declared.size(); ++i) {
    const AddedToken& token = declared[i];
    if (token.content.empty()) continue;
    if (std::any_of(by_id.begin(), by_id.end(), [&](const auto& e) { return same_token(e.second, token); })) continue;
    int32_t id;
    if (const auto it = t.added_ids.find(token.content); it != t.added_ids.end()) {
      id = it->second;
    } else if (const auto in_vocab = t.model.token_to_id(token.content)) {
      id = *in_vocab;
    } else if (t.added_ids.empty()) {
      id = static_cast<int32_t>(vocab_entries);
    } else {
      int32_t max_id = 0;
      for (const auto& [content, aid] : t.added_ids) max_id = std::max(max_id, aid);
      const auto n = static_cast<int32_t>(vocab_entries);
      id = max_id >= n || n == 0 ? max_id + 1 : n;
    }
    if (id != declared_ids[i])
      BF_LOG(kWarn, "[tokenizer] ", t.source, ": added token '", token.content, "' is declared with id ",
             declared_ids[i], " but resolves to id ", id, " (as in Hugging Face tokenizers)");
    t.added_ids[token.content] = id;
    by_id[id] = token;
    by_id[id].id = id;
  }
  std::map<int32_t, size_t> index_of_id;
  for (auto& [id, token] : by_id) {
    // Special or not is decided by content, like Hugging Face's special-token set.
    token.special = special_contents.contains(token.content);
    index_of_id[id] = t.added.size();
    t.added.push_back(token);
  }

  // Patterns: the special tokens, then the others, in file order. A declaration decides whether its
  // pattern is matched in raw or normalized text; the token resolved for its id decides the rest.
  std::vector<std::string> raw_patterns, norm_patterns;
  std::vector<const AddedToken*> raw_tokens, norm_tokens;
  const auto add_pattern = [&](const AddedToken& d) {
    const AddedToken* token = &t.added[index_of_id.at(t.added_ids.at(d.content))];
    if (d.normalized) {
      norm_patterns.push_back(t.normalizer ? t.normalizer->normalize(d.content) : d.content);
      norm_tokens.push_back(token);
    } else {
      raw_patterns.push_back(d.content);
      raw_tokens.push_back(token);
    }
  };
  std::set<std::string> listed;
  for (const AddedToken& d : declared)
    if (d.special && !d.content.empty() && listed.insert(d.content).second) add_pattern(d);
  for (const AddedToken& d : declared)
    if (!d.content.empty() && !special_contents.contains(d.content)) add_pattern(d);
  t.raw_matcher = AddedTokenMatcher(raw_patterns, std::move(raw_tokens));
  t.normalized_matcher = AddedTokenMatcher(norm_patterns, std::move(norm_tokens));
}

}  // namespace

void TokenizerImpl::check_id(int32_t id) const {
  if (id < 0 || id >= vocab_size || !has_token[id])
    throw Error(ErrorCode::kInvalidArgument, "tokenizer",
                cat(source, ": token id ", id,
                    id < 0 || id >= vocab_size ? cat(" is out of range [0, ", vocab_size, ")")
                                               : std::string(" names no token")));
}

void TokenizerImpl::encode_stretch(std::string_view text, bool at_start, bool allow_special,
                                   std::vector<int32_t>& ids) const {
  const std::string normalized = normalizer ? normalizer->normalize(std::string(text)) : std::string(text);
  for (const auto& seg : normalized_matcher.split(normalized, allow_special)) {
    if (seg.token) {
      ids.push_back(seg.token->id);
      continue;
    }
    if (seg.begin >= seg.end) continue;
    std::vector<Piece> pieces{Piece{normalized.substr(seg.begin, seg.end - seg.begin), at_start && seg.begin == 0}};
    if (pre_tokenizer) pre_tokenizer->apply(pieces);
    for (const Piece& p : pieces) model.encode_word(p.text, ids);
  }
}

}  // namespace text

using text::TokenizerImpl;

Tokenizer::Tokenizer(std::unique_ptr<const TokenizerImpl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::from_json(std::string_view json_text, std::string_view source) {
  std::unique_ptr<const TokenizerImpl> impl;
  try {
    impl = text::build_tokenizer(json_text, source);
  } catch (const text::Json::exception& e) {
    // The field accessors check types before reading; this is a net for a case they missed.
    throw Error(ErrorCode::kInvalidFile, "tokenizer", cat(source, ": malformed tokenizer.json: ", e.what()));
  }
  return Tokenizer(std::move(impl));
}

std::unique_ptr<TokenizerImpl> text::build_tokenizer(std::string_view json_text, std::string_view source) {
  auto t = std::make_unique<TokenizerImpl>();
  t->source = std::string(source);
  const text::Json doc = text::parse_json(json_text, t->source);
  const text::JsonField root(doc, t->source, "");
  if (!doc.is_object()) root.fail("expected a JSON object");

  const auto model = root.maybe("model");
  if (!model) root.fail("has no \"model\" object");
  if (!model->value().is_object()) model->fail("expected an object");
  // Older files leave out the model type; a model with merges is BPE.
  const std::string type = model->has("type") ? model->at("type").string() : (model->has("merges") ? "BPE" : "");
  if (type != "BPE")
    model->unsupported(cat("model type '", type.empty() ? "(none)" : type, "' is not implemented; only BPE is"));
  t->model = text::BpeModel::from_json(*model);

  if (const auto f = root.maybe("normalizer")) t->normalizer = text::make_normalizer(*f);
  if (const auto f = root.maybe("pre_tokenizer")) t->pre_tokenizer = text::make_pre_tokenizer(*f);
  if (const auto f = root.maybe("decoder")) t->decoder = text::make_decoder(*f);
  if (const auto f = root.maybe("added_tokens")) text::resolve_added_tokens(*t, *f);

  int32_t max_id = -1;
  for (const auto& [token, id] : t->model.vocab()) max_id = std::max(max_id, id);
  for (const auto& a : t->added) max_id = std::max(max_id, a.id);
  t->vocab_size = max_id + 1;
  t->tokens.resize(t->vocab_size);
  t->has_token.assign(t->vocab_size, 0);
  t->special.assign(t->vocab_size, 0);
  for (const auto& [token, id] : t->model.vocab()) {
    t->tokens[id] = token;
    t->has_token[id] = 1;
  }
  for (const auto& a : t->added) {
    // Hugging Face hands a normalized added token to the decoder in its normalized spelling
    // ("hello world" becomes "▁hello▁world" under a Llama-2 normalizer, and decodes with its space).
    t->tokens[a.id] = a.normalized && t->normalizer ? t->normalizer->normalize(a.content) : a.content;
    t->has_token[a.id] = 1;
    t->special[a.id] = a.special;  // an added token in the vocabulary has the vocabulary's id
  }
  return t;
}

int32_t Tokenizer::vocab_size() const { return impl_->vocab_size; }

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool allow_special) const {
  if (const auto bad = text::find_invalid_utf8(text))
    throw Error(ErrorCode::kInvalidArgument, "tokenizer", cat("text to encode is not valid UTF-8 at byte ", *bad));
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  for (const auto& seg : impl_->raw_matcher.split(text, allow_special)) {
    if (seg.token)
      ids.push_back(seg.token->id);
    else if (seg.begin < seg.end)
      impl_->encode_stretch(text.substr(seg.begin, seg.end - seg.begin), seg.begin == 0, allow_special, ids);
  }
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (const int32_t id : ids) {
    impl_->check_id(id);
    if (skip_special && impl_->special[id]) continue;
    tokens.push_back(impl_->tokens[id]);
  }
  std::string out;
  if (impl_->decoder) {
    impl_->decoder->decode_chain(tokens);
    for (const std::string& t : tokens) out += t;
  } else {
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i > 0) out += ' ';
      out += tokens[i];
    }
  }
  return out;
}

std::string Tokenizer::token_bytes(int32_t id) const {
  impl_->check_id(id);
  std::string token = impl_->tokens[id];
  bool joined = false;
  if (impl_->decoder) impl_->decoder->raw_token(token, joined);
  return token;
}

bool Tokenizer::is_special(int32_t id) const { return id >= 0 && id < impl_->vocab_size && impl_->special[id] != 0; }

std::optional<int32_t> Tokenizer::find(std::string_view token) const {
  if (const auto it = impl_->added_ids.find(token); it != impl_->added_ids.end()) return it->second;
  return impl_->model.token_to_id(token);
}

}  // namespace bf
