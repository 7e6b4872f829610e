#include "batch_forge/io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "batch_forge/core/error.h"

namespace bf {
namespace {

using Json = nlohmann::json;

static_assert(sizeof(size_t) >= sizeof(uint64_t), "offsets are 64-bit and index the mapping directly");

constexpr uint64_t kLengthBytes = 8;     // the little-endian u64 before the header
constexpr size_t kMaxQuotedBytes = 160;  // names longer than this are cut in messages
constexpr size_t kMaxJsonErrorBytes = 240;
constexpr size_t kMaxShownDims = 16;
constexpr uint64_t kInt64Max = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

// Cuts `s` to at most `max` bytes without splitting a UTF-8 sequence.
std::string_view utf8_prefix(std::string_view s, size_t max) {
  if (s.size() <= max) return s;
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

// 'name' for messages: control characters escaped (a name may hold "\n"), very long names cut,
// so that one hostile header cannot turn an error message into megabytes.
std::string quote_name(std::string_view s) {
  std::string out = "'";
  for (char c : utf8_prefix(s, kMaxQuotedBytes)) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 0xF];
    } else {
      out += c;
    }
  }
  out += "'";
  if (s.size() > kMaxQuotedBytes) out += cat("… (", s.size(), " bytes)");
  return out;
}

// Byte index of the first byte that does not start a well-formed UTF-8 sequence (overlong forms,
// surrogates and code points past U+10FFFF are ill-formed), or npos when all of `s` is valid.
size_t first_invalid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto lead = static_cast<unsigned char>(s[i]);
    if (lead < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    uint32_t cp = 0;
    uint32_t min_cp = 0;
    if ((lead & 0xE0) == 0xC0) {
      len = 2, cp = lead & 0x1F, min_cp = 0x80;
    } else if ((lead & 0xF0) == 0xE0) {
      len = 3, cp = lead & 0x0F, min_cp = 0x800;
    } else if ((lead & 0xF8) == 0xF0) {
      len = 4, cp = lead & 0x07, min_cp = 0x10000;
    } else {
      return i;
    }
    if (s.size() - i < len) return i;
    for (size_t k = 1; k < len; ++k) {
      const auto cont = static_cast<unsigned char>(s[i + k]);
      if ((cont & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (cont & 0x3F);
    }
    if (cp < min_cp || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += len;
  }
  return std::string_view::npos;
}

// "a string", "an array", ...: what a value is, without printing it (a value may be huge or
// nested thousands deep, and Json::dump recurses).
std::string_view json_kind(const Json& v) {
  switch (v.type()) {
    case Json::value_t::null: return "null";
    case Json::value_t::object: return "an object";
    case Json::value_t::array: return "an array";
    case Json::value_t::string: return "a string";
    case Json::value_t::boolean: return "a boolean";
    case Json::value_t::binary: return "binary";
    case Json::value_t::discarded: return "discarded";
    default: return "a number";
  }
}

// A scalar for a message: the number itself, or what kind of value it is.
std::string show_scalar(const Json& v) {
  if (v.is_number_unsigned()) return cat(v.get<uint64_t>());
  if (v.is_number_integer()) return cat(v.get<int64_t>());
  if (v.is_number_float()) return cat(v.get<double>());
  return std::string(json_kind(v));
}

std::string show_dims(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size() && i < kMaxShownDims; ++i) s += cat(i ? ", " : "", dims[i]);
  if (dims.size() > kMaxShownDims) s += cat(", … (", dims.size(), " dims)");
  return s + "]";
}

// A JSON integer ≥ 0 that fits in 64 bits. nlohmann stores non-negative integer literals as
// unsigned and negative ones as signed ("-0" is signed zero); anything with a '.' or an exponent
// is a float, which the format does not allow here even when it is whole.
std::optional<uint64_t> as_u64(const Json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return static_cast<uint64_t>(v.get<int64_t>());
  return std::nullopt;
}

class HeaderParser {
 public:
  HeaderParser(std::string_view source, uint64_t data_bytes) : source_(source), data_bytes_(data_bytes) {}

  template <typename... Args>
  [[noreturn]] void fail(Args&&... args) const {
    throw Error(ErrorCode::kInvalidFile, "safetensors", cat(source_, ": ", std::forward<Args>(args)...));
  }

  Json parse_json(std::string_view text) const;
  void read_metadata(const Json& v, SafetensorsHeader& header) const;
  TensorInfo read_tensor(const std::string& name, const Json& v) const;
  void check_layout(const std::vector<TensorInfo>& sorted) const;

 private:
  std::vector<int64_t> read_shape(const std::string& name, const Json& v) const;
  uint64_t read_offset(const std::string& name, const Json& pair, size_t i) const;

  std::string_view source_;
  uint64_t data_bytes_;
};

// nlohmann keeps the last of two equal keys without a word; the callback sees every key as it is
// read and rejects a repeat, keeping one key set per open object.
Json HeaderParser::parse_json(std::string_view text) const {
  std::vector<std::set<std::string, std::less<>>> open_objects;
  std::string entry;  // the top-level key whose value is being read
  auto on_event = [&](int, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start: open_objects.emplace_back(); break;
      case Json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case Json::parse_event_t::key: {
        if (open_objects.empty()) break;
        const auto& key = parsed.get_ref<const std::string&>();
        const bool fresh = open_objects.back().insert(key).second;
        const size_t depth = open_objects.size();
        if (fresh) {
          if (depth == 1) entry = key;
          break;
        }
        if (depth == 1 && key == "__metadata__") fail("\"__metadata__\" appears twice in the header");
        if (depth == 1) fail("tensor ", quote_name(key), " appears twice in the header");
        if (depth == 2 && entry == "__metadata__") fail("__metadata__ key ", quote_name(key), " appears twice");
        if (depth == 2) fail("tensor ", quote_name(entry), " has key ", quote_name(key), " twice");
        fail("key ", quote_name(key), " appears twice in one object inside ", quote_name(entry));
      }
      default: break;
    }
    return true;
  };
  // nlohmann's lexer takes a NUL byte for the end of input and would accept "{}\0anything"; a raw
  // NUL is never valid JSON (not whitespace, and strings must escape it).
  if (const size_t nul = text.find('\0'); nul != text.npos)
    fail("header is not valid JSON: NUL byte at byte ", nul, " of the header");
  try {
    return Json::parse(text.data(), text.data() + text.size(), on_event);
  } catch (const Json::exception& e) {
    // "[json.exception.parse_error.101] parse error at line 1, column 9: ..." → drop the tag.
    std::string_view why = e.what();
    if (const size_t tag_end = why.find("] "); why.starts_with("[json.") && tag_end != why.npos)
      why.remove_prefix(tag_end + 2);
    const std::string_view shown = utf8_prefix(why, kMaxJsonErrorBytes);
    fail("header is not valid JSON: ", shown, shown.size() < why.size() ? "…" : "");
  }
}

void HeaderParser::read_metadata(const Json& v, SafetensorsHeader& header) const {
  if (!v.is_object()) fail("\"__metadata__\" must be a JSON object of string → string, got ", json_kind(v));
  for (const auto& [key, value] : v.items()) {
    if (!value.is_string())
      fail("__metadata__ value for key ", quote_name(key), " is ", json_kind(value),
           "; metadata values must be strings");
    header.metadata.emplace(key, value.get<std::string>());
  }
}

std::vector<int64_t> HeaderParser::read_shape(const std::string& name, const Json& v) const {
  if (!v.is_array())
    fail("tensor ", quote_name(name), ": \"shape\" must be an array of non-negative integers, got ", json_kind(v));
  std::vector<int64_t> dims;
  dims.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    const Json& d = v[i];
    if (d.is_number_integer() && !d.is_number_unsigned() && d.get<int64_t>() < 0)
      fail("tensor ", quote_name(name), ": shape dimension ", i, " is negative (", d.get<int64_t>(), ")");
    const std::optional<uint64_t> dim = as_u64(d);
    if (!dim) fail("tensor ", quote_name(name), ": shape dimension ", i, " is not an integer (", show_scalar(d), ")");
    if (*dim > kInt64Max)
      fail("tensor ", quote_name(name), ": shape dimension ", i, " is ", *dim, ", which exceeds the int64 range");
    dims.push_back(static_cast<int64_t>(*dim));
  }
  return dims;
}

uint64_t HeaderParser::read_offset(const std::string& name, const Json& pair, size_t i) const {
  const std::optional<uint64_t> offset = as_u64(pair[i]);
  if (!offset)
    fail("tensor ", quote_name(name), ": data_offsets[", i, "] is not a non-negative integer (", show_scalar(pair[i]),
         ")");
  return *offset;
}

TensorInfo HeaderParser::read_tensor(const std::string& name, const Json& v) const {
  if (!v.is_object())
    fail("tensor ", quote_name(name), " is ", json_kind(v),
         "; an entry must be an object with \"dtype\", \"shape\" and ", "\"data_offsets\"");
  // Other keys in an entry are ignored, as the reference library ignores them.
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!v.contains(key)) fail("tensor ", quote_name(name), " has no \"", key, "\"");

  TensorInfo t;
  t.name = name;
  const Json& dtype = v["dtype"];
  if (!dtype.is_string()) fail("tensor ", quote_name(name), ": \"dtype\" must be a string, got ", json_kind(dtype));
  const auto& dtype_str = dtype.get_ref<const std::string&>();
  const std::optional<DType> dt = dtype_from_safetensors(dtype_str);
  if (!dt) fail("tensor ", quote_name(name), " has unknown dtype ", quote_name(dtype_str));
  t.dtype = *dt;
  t.dims = read_shape(name, v["shape"]);

  const Json& offsets = v["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2)
    fail("tensor ", quote_name(name), ": \"data_offsets\" must be [begin, end], got ", json_kind(offsets),
         offsets.is_array() ? cat(" of ", offsets.size(), " values") : "");
  t.begin = read_offset(name, offsets, 0);
  t.end = read_offset(name, offsets, 1);
  if (t.begin > t.end)
    fail("tensor ", quote_name(name), " has data_offsets [", t.begin, ", ", t.end, "]: begin is after end");

  // The non-zero dims must multiply within int64 even for a zero-size tensor: strides are the
  // products of trailing dims, and a view computes them in int64.
  uint64_t n_elems = 1;
  bool has_zero = false;
  for (const int64_t d : t.dims) {
    if (d == 0) {
      has_zero = true;
      continue;
    }
    if (__builtin_mul_overflow(n_elems, static_cast<uint64_t>(d), &n_elems) || n_elems > kInt64Max)
      fail("tensor ", quote_name(name), ": element count overflows int64 for shape ", show_dims(t.dims));
  }
  if (has_zero) n_elems = 0;
  const std::optional<uint64_t> need = dtype_bytes(t.dtype, n_elems);
  if (!need)
    fail("tensor ", quote_name(name), ": byte size overflows 64 bits for dtype ", dtype_str, " × shape ",
         show_dims(t.dims));
  if (t.nbytes() != *need)
    fail("tensor ", quote_name(name), " has data_offsets [", t.begin, ", ", t.end, "] (", t.nbytes(),
         " bytes) but dtype ", dtype_str, " × shape ", show_dims(t.dims), " needs ", *need, " bytes");
  if (t.end > data_bytes_)
    fail("tensor ", quote_name(name), " ends at byte ", t.end, " but the data section has ", data_bytes_);
  return t;
}

// `sorted` is ordered by (begin, end). The data section must be tiled exactly: the first tensor
// at 0, each next one where the previous ended, the last one at the end. Zero-size tensors tile
// trivially, so several may share an offset.
void HeaderParser::check_layout(const std::vector<TensorInfo>& sorted) const {
  uint64_t cursor = 0;
  const TensorInfo* prev = nullptr;
  for (const TensorInfo& t : sorted) {
    if (t.begin < cursor)
      fail("tensors ", quote_name(prev->name), " [", prev->begin, ", ", prev->end, ") and ", quote_name(t.name), " [",
           t.begin, ", ", t.end, ") overlap");
    if (t.begin > cursor && prev == nullptr)
      fail("gap before the first tensor ", quote_name(t.name), ": bytes [0, ", t.begin, ") belong to no tensor");
    if (t.begin > cursor)
      fail("gap between tensors ", quote_name(prev->name), " and ", quote_name(t.name), ": bytes [", cursor, ", ",
           t.begin, ") belong to no tensor");
    cursor = t.end;
    prev = &t;
  }
  if (cursor == data_bytes_) return;
  if (prev == nullptr) fail(data_bytes_, " trailing bytes after the last tensor (the header lists no tensors)");
  fail(data_bytes_ - cursor, " trailing bytes after the last tensor ", quote_name(prev->name), " (it ends at byte ",
       cursor, ", the data section has ", data_bytes_, ")");
}

}  // namespace

SafetensorsHeader parse_safetensors(std::span<const std::byte> bytes, std::string_view source) {
  HeaderParser early(source, 0);
  if (bytes.size() < kLengthBytes)
    early.fail("file is ", bytes.size(), " bytes, shorter than the 8-byte header length prefix");
  uint64_t n = 0;
  for (size_t i = 0; i < kLengthBytes; ++i) n |= static_cast<uint64_t>(bytes[i]) << (8 * i);
  if (n > kSafetensorsMaxHeaderBytes)
    early.fail("header length ", n, " is over the ", kSafetensorsMaxHeaderBytes, "-byte limit");
  const uint64_t after_prefix = bytes.size() - kLengthBytes;
  if (n > after_prefix)
    early.fail("header length ", n, " runs past the end of the file (", after_prefix, " bytes follow the length)");

  SafetensorsHeader header;
  header.header_bytes = n;
  header.data_offset = kLengthBytes + n;
  header.data_bytes = after_prefix - n;
  const HeaderParser parser(source, header.data_bytes);

  const std::string_view text(reinterpret_cast<const char*>(bytes.data() + kLengthBytes), n);
  if (const size_t bad = first_invalid_utf8(text); bad != text.npos)
    parser.fail("header is not valid UTF-8 (byte ", bad, " of the header)");
  const Json root = parser.parse_json(text);
  if (!root.is_object()) parser.fail("the header must be a JSON object, got ", json_kind(root));

  for (const auto& [key, value] : root.items()) {
    if (key == "__metadata__")
      parser.read_metadata(value, header);
    else
      header.tensors.push_back(parser.read_tensor(key, value));
  }
  // Stable: tensors at the same offsets (zero-size ones) stay in the order the JSON library iterates
  // the header (sorted by name).
  std::stable_sort(header.tensors.begin(), header.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return std::pair(a.begin, a.end) < std::pair(b.begin, b.end);
  });
  parser.check_layout(header.tensors);
  return header;
}

SafetensorsFile::SafetensorsFile(std::string path, MappedFile file, SafetensorsHeader header)
    : path_(std::move(path)), file_(std::move(file)), header_(std::move(header)) {
  for (size_t i = 0; i < header_.tensors.size(); ++i) index_.emplace(header_.tensors[i].name, i);
}

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) {
  MappedFile file = MappedFile::open(path);
  std::string name = path.string();
  SafetensorsHeader header = parse_safetensors(file.bytes(), name);
  return SafetensorsFile(std::move(name), std::move(file), std::move(header));
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &header_.tensors[it->second];
}

std::span<const std::byte> SafetensorsFile::data(const TensorInfo& t) const {
  BF_CHECK(t.begin <= t.end && t.end <= header_.data_bytes, "tensor '", t.name, "' [", t.begin, ", ", t.end,
           ") is not inside the data section of ", path_);
  return file_.bytes().subspan(header_.data_offset + t.begin, t.nbytes());
}

ConstTensorView SafetensorsFile::view(const TensorInfo& t) const {
  if (t.dims.size() > static_cast<size_t>(kMaxRank))
    throw Error(ErrorCode::kUnsupported, "safetensors",
                cat(path_, ": tensor ", quote_name(t.name), " has rank ", t.dims.size(), "; views support at most ",
                    kMaxRank, " dimensions"));
  return ConstTensorView::contiguous(data(t), t.dtype, Shape(std::span<const int64_t>(t.dims)));
}

}  // namespace bf
