#include <kiln/host/json.hpp>
#include <kiln/sdk.hpp>
#include <kiln/serve/infer_json.hpp>
#include <kiln/serving.hpp>

#include "json_text.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <system_error>
#include <type_traits>

namespace kiln::serve {
namespace {

using host::Json;

constexpr int64_t kMaxElements = int64_t{1} << 40;

// Multiplies the element count by one more dimension (0 counts as 1: a
// zero-sized tensor must not hide a huge other dimension); false past
// kMaxElements, checked before multiplying so nothing overflows.
bool grow_elements(int64_t& elements, int64_t dimension) {
  const int64_t d = std::max<int64_t>(1, dimension);
  if (dimension > kMaxElements || elements > kMaxElements / d) return false;
  elements *= d;
  return true;
}

// Whether a JSON number can be an FP32 value (beyond its range the cast is undefined).
bool fits_fp32(double value) {
  return std::fabs(value) <= static_cast<double>(std::numeric_limits<float>::max());
}

// -------------------------------------------------------------- fast reader

// A SAX handler (the interface of nlohmann::json::sax_parse, driven by the
// Scanner below) for the well-formed request: it fills the tensors as the
// values stream by. It gives up (returns false) on
// anything else, and the tree reader below then names the problem, so
// there is one definition of each error message and of what is accepted.
class FastReader {
 public:
  FastReader(InferBody& out, size_t body_bytes) : out_(out), body_bytes_(body_bytes) {}

  bool null() { return skip_scalar(); }
  bool boolean(bool value) {
    if (skipping()) return skip_scalar();
    if (expect_ != Expect::DataValue || tensor().datatype != KILN_DT_BOOL) return false;
    return push_byte(value ? 1 : 0);
  }
  bool number_integer(Json::number_integer_t value) {
    if (skipping()) return skip_scalar();
    if (expect_ != Expect::DataValue) return false;  // a negative shape, or a number where a string belongs
    return put_signed(value);
  }
  bool number_unsigned(Json::number_unsigned_t value) {
    if (skipping()) return skip_scalar();
    if (expect_ == Expect::ShapeValue) return push_dimension(value);
    if (expect_ != Expect::DataValue) return false;
    return put_unsigned(value);
  }
  bool number_float(Json::number_float_t value, const Json::string_t& /*text*/) {
    if (skipping()) return skip_scalar();
    if (expect_ != Expect::DataValue) return false;
    switch (tensor().datatype) {
      case KILN_DT_FP32:
        return fits_fp32(value) && push(static_cast<float>(value));
      case KILN_DT_FP64:
        return push(value);
      default:
        return false;
    }
  }
  bool string(Json::string_t& value) {
    if (skipping()) return skip_scalar();
    switch (expect_) {
      case Expect::Id:
        out_.id = value;
        expect_ = Expect::RequestKey;
        return true;
      case Expect::InputName:
        tensor().name = value;
        expect_ = Expect::InputKey;
        return true;
      case Expect::InputDatatype: {
        const auto type = datatype_from_name(value);
        if (type == 0 || type == KILN_DT_BYTES || type == KILN_DT_FP16) return false;
        tensor().datatype = type;
        element_size_ = datatype_info(type)->size;
        expect_ = Expect::InputKey;
        return true;
      }
      case Expect::OutputName:
        out_.wanted_outputs.push_back(value);
        expect_ = Expect::OutputKey;
        return true;
      default:
        return false;
    }
  }
  bool binary(Json::binary_t& /*value*/) { return false; }

  bool start_object(std::size_t /*size*/) {
    if (skipping()) return skip_open();
    switch (expect_) {
      case Expect::Request:
        expect_ = Expect::RequestKey;
        return true;
      case Expect::InputOrEnd:
        out_.inputs.emplace_back();
        input_keys_ = 0;
        element_size_ = 0;
        expect_ = Expect::InputKey;
        return true;
      case Expect::OutputOrEnd:
        output_named_ = false;
        expect_ = Expect::OutputKey;
        return true;
      default:
        return false;
    }
  }
  bool key(Json::string_t& key) {
    if (skip_depth_ > 0) return true;
    switch (expect_) {
      case Expect::RequestKey:
        return request_key(key);
      case Expect::InputKey:
        return input_key(key);
      case Expect::OutputKey:
        if (key != "name") return skip_next();
        if (output_named_) return false;
        output_named_ = true;
        expect_ = Expect::OutputName;
        return true;
      default:
        return false;
    }
  }
  bool end_object() {
    if (skipping()) return skip_close();
    switch (expect_) {
      case Expect::RequestKey:
        if ((request_keys_ & kInputs) == 0) return false;
        expect_ = Expect::Done;
        return true;
      case Expect::InputKey:
        return finish_input();
      case Expect::OutputKey:
        expect_ = Expect::OutputOrEnd;
        return output_named_;
      default:
        return false;
    }
  }
  bool start_array(std::size_t /*size*/) {
    if (skipping()) return skip_open();
    switch (expect_) {
      case Expect::Inputs:
        expect_ = Expect::InputOrEnd;
        return true;
      case Expect::Outputs:
        expect_ = Expect::OutputOrEnd;
        return true;
      case Expect::Shape:
        expect_ = Expect::ShapeValue;
        return true;
      case Expect::Data:
        expect_ = Expect::DataValue;
        data_depth_ = 1;
        return true;
      case Expect::DataValue:  // nested rows flatten
        ++data_depth_;
        return true;
      default:
        return false;
    }
  }
  bool end_array() {
    if (skipping()) return skip_close();
    switch (expect_) {
      case Expect::InputOrEnd:
      case Expect::OutputOrEnd:
        expect_ = Expect::RequestKey;
        return true;
      case Expect::ShapeValue:
        expect_ = Expect::InputKey;
        return true;
      case Expect::DataValue:
        if (--data_depth_ == 0) expect_ = Expect::InputKey;
        return true;
      default:
        return false;
    }
  }
  bool parse_error(std::size_t /*position*/, const std::string& /*last_token*/,
                   const nlohmann::detail::exception& /*error*/) {
    return false;
  }

  bool done() const { return expect_ == Expect::Done; }

 private:
  enum class Expect {
    Request,
    RequestKey,
    Id,
    Inputs,
    InputOrEnd,
    InputKey,
    InputName,
    InputDatatype,
    Shape,
    ShapeValue,
    Data,
    DataValue,
    Outputs,
    OutputOrEnd,
    OutputKey,
    OutputName,
    Done
  };
  // Keys seen in the request and in the current input (a repeated key gives up).
  static constexpr unsigned kInputs = 1, kOutputs = 2, kId = 4;
  static constexpr unsigned kName = 1, kDatatype = 2, kShape = 4, kData = 8;

  HostTensor& tensor() { return out_.inputs.back(); }

  bool request_key(const std::string& key) {
    const unsigned bit = key == "inputs" ? kInputs : key == "outputs" ? kOutputs : key == "id" ? kId : 0;
    if (bit == 0) return skip_next();  // "parameters" and extensions
    if ((request_keys_ & bit) != 0) return false;
    request_keys_ |= bit;
    expect_ = bit == kInputs ? Expect::Inputs : bit == kOutputs ? Expect::Outputs : Expect::Id;
    return true;
  }

  bool input_key(const std::string& key) {
    const unsigned bit = key == "name"       ? kName
                         : key == "datatype" ? kDatatype
                         : key == "shape"    ? kShape
                         : key == "data"     ? kData
                                             : 0;
    if (bit == 0) return skip_next();  // "parameters"
    if ((input_keys_ & bit) != 0) return false;
    // Values are typed as they arrive: data before its datatype goes the slow way.
    if (bit == kData && (input_keys_ & kDatatype) == 0) return false;
    input_keys_ |= bit;
    expect_ = bit == kName       ? Expect::InputName
              : bit == kDatatype ? Expect::InputDatatype
              : bit == kShape    ? Expect::Shape
                                 : Expect::Data;
    if (bit == kData && (input_keys_ & kShape) != 0)  // a value takes two bytes of text at least
      tensor().bytes.reserve(std::min(static_cast<size_t>(elements_), body_bytes_ / 2 + 1) * element_size_);
    if (bit == kShape) elements_ = 1;
    return true;
  }

  bool push_dimension(uint64_t value) {
    if (value > static_cast<uint64_t>(kMaxElements)) return false;
    const auto d = static_cast<int64_t>(value);
    if (!grow_elements(elements_, d)) return false;
    tensor().shape.push_back(d);
    return true;
  }

  bool finish_input() {
    if (input_keys_ != (kName | kDatatype | kShape | kData)) return false;
    const HostTensor& t = tensor();
    if (static_cast<int64_t>(t.bytes.size() / element_size_) != t.elements()) return false;
    expect_ = Expect::InputOrEnd;
    return true;
  }

  template <class T>
  bool push(T value) {
    auto& bytes = tensor().bytes;
    const size_t at = bytes.size();
    bytes.resize(at + sizeof(T));
    std::memcpy(bytes.data() + at, &value, sizeof(T));
    return true;
  }
  bool push_byte(uint8_t value) {
    tensor().bytes.push_back(value);
    return true;
  }

  template <class T>
  bool put_integer(int64_t value) {
    if (value < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
        (value > 0 && static_cast<uint64_t>(value) > static_cast<uint64_t>(std::numeric_limits<T>::max())))
      return false;
    return push(static_cast<T>(value));
  }
  bool put_signed(int64_t value) {
    switch (tensor().datatype) {
      case KILN_DT_UINT8:
        return put_integer<uint8_t>(value);
      case KILN_DT_UINT16:
        return put_integer<uint16_t>(value);
      case KILN_DT_UINT32:
        return put_integer<uint32_t>(value);
      case KILN_DT_UINT64:
        return value >= 0 && push(static_cast<uint64_t>(value));
      case KILN_DT_INT8:
        return put_integer<int8_t>(value);
      case KILN_DT_INT16:
        return put_integer<int16_t>(value);
      case KILN_DT_INT32:
        return put_integer<int32_t>(value);
      case KILN_DT_INT64:
        return push(value);
      case KILN_DT_FP32:  // through double, as the tree reader converts
        return push(static_cast<float>(static_cast<double>(value)));
      case KILN_DT_FP64:
        return push(static_cast<double>(value));
      default:
        return false;
    }
  }
  bool put_unsigned(uint64_t value) {
    if (tensor().datatype == KILN_DT_UINT64) return push(value);
    if (tensor().datatype == KILN_DT_FP32) return push(static_cast<float>(static_cast<double>(value)));
    if (tensor().datatype == KILN_DT_FP64) return push(static_cast<double>(value));
    if (value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
    return put_signed(static_cast<int64_t>(value));
  }

  // A value of no interest (an unknown key's) is skipped whole.
  bool skipping() const { return skip_depth_ > 0 || skip_one_; }
  bool skip_next() {
    skip_one_ = true;
    return true;
  }
  bool skip_scalar() {
    if (skip_depth_ == 0) {
      if (!skip_one_) return false;  // a value where none belongs
      skip_one_ = false;
    }
    return true;
  }
  bool skip_open() {
    if (skip_depth_ == 0) skip_one_ = false;
    ++skip_depth_;
    return true;
  }
  bool skip_close() {
    if (skip_depth_ == 0) return false;
    --skip_depth_;
    return true;
  }

  InferBody& out_;
  const size_t body_bytes_;
  Expect expect_ = Expect::Request;
  unsigned request_keys_ = 0, input_keys_ = 0;
  bool output_named_ = false, skip_one_ = false;
  int skip_depth_ = 0, data_depth_ = 0;
  size_t element_size_ = 0;
  int64_t elements_ = 1;
};

// Drives a SAX handler (the interface of nlohmann::json::sax_parse) over
// the JSON an inference request is made of, several times faster than the
// general lexer: it reads numbers in place (std::from_chars) and strings
// without copying escapes. It takes only plain strings (no escape, control
// or non-ASCII byte), integers that fit 64 bits and finite doubles, and
// nesting up to kMaxDepth; anything else stops it and the tree reader
// (nlohmann) reads the body instead. So it never accepts what that rejects.
template <class Handler>
class Scanner {
 public:
  Scanner(const std::string& text, Handler& handler)
      : p_(text.data()), end_(text.data() + text.size()), handler_(handler) {}

  bool run() {
    skip_space();
    if (!value(0)) return false;
    skip_space();
    return p_ == end_;
  }

 private:
  static constexpr int kMaxDepth = 32;
  inline static const std::string kNoText;  // a number's text is not handed on

  void skip_space() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }
  bool take(char c) {
    skip_space();
    if (p_ == end_ || *p_ != c) return false;
    ++p_;
    return true;
  }

  bool value(int depth) {
    if (p_ == end_ || depth > kMaxDepth) return false;
    switch (*p_) {
      case '{':
        return object(depth);
      case '[':
        return array(depth);
      case '"':
        return read_string() && handler_.string(text_);
      case 't':
        return literal("true") && handler_.boolean(true);
      case 'f':
        return literal("false") && handler_.boolean(false);
      case 'n':
        return literal("null") && handler_.null();
      default:
        return number();
    }
  }

  bool object(int depth) {
    ++p_;
    if (!handler_.start_object(static_cast<std::size_t>(-1))) return false;
    if (take('}')) return handler_.end_object();
    do {
      skip_space();
      if (p_ == end_ || *p_ != '"' || !read_string() || !handler_.key(text_) || !take(':')) return false;
      skip_space();
      if (!value(depth + 1)) return false;
    } while (take(','));
    return take('}') && handler_.end_object();
  }

  bool array(int depth) {
    ++p_;
    if (!handler_.start_array(static_cast<std::size_t>(-1))) return false;
    if (take(']')) return handler_.end_array();
    do {
      skip_space();
      if (!value(depth + 1)) return false;
    } while (take(','));
    return take(']') && handler_.end_array();
  }

  bool read_string() {
    const char* start = ++p_;
    while (p_ < end_) {
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        text_.assign(start, p_);
        ++p_;
        return true;
      }
      if (c == '\\' || c < 0x20 || c >= 0x80) return false;
      ++p_;
    }
    return false;
  }

  bool literal(const char* word) {
    const size_t n = std::strlen(word);
    if (static_cast<size_t>(end_ - p_) < n || std::memcmp(p_, word, n) != 0) return false;
    p_ += n;
    return true;
  }

  static bool digit(char c) { return c >= '0' && c <= '9'; }

  // The JSON number grammar, checked here: from_chars alone accepts more.
  bool number() {
    const char* start = p_;
    if (p_ < end_ && *p_ == '-') ++p_;
    if (p_ == end_ || !digit(*p_)) return false;
    if (*p_ == '0')
      ++p_;
    else
      while (p_ < end_ && digit(*p_)) ++p_;
    bool integer = true;
    if (p_ < end_ && *p_ == '.') {
      integer = false;
      if (++p_ == end_ || !digit(*p_)) return false;
      while (p_ < end_ && digit(*p_)) ++p_;
    }
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      integer = false;
      if (++p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (p_ == end_ || !digit(*p_)) return false;
      while (p_ < end_ && digit(*p_)) ++p_;
    }
    if (integer && *start == '-') {
      int64_t v = 0;
      const auto r = std::from_chars(start, p_, v);
      return r.ec == std::errc() && r.ptr == p_ && handler_.number_integer(v);
    }
    if (integer) {
      uint64_t v = 0;
      const auto r = std::from_chars(start, p_, v);
      return r.ec == std::errc() && r.ptr == p_ && handler_.number_unsigned(v);
    }
    double v = 0;
    const auto r = std::from_chars(start, p_, v);
    return r.ec == std::errc() && r.ptr == p_ && std::isfinite(v) && handler_.number_float(v, kNoText);
  }

  const char* p_;
  const char* const end_;
  Handler& handler_;
  std::string text_;  // the last string or key read
};

// -------------------------------------------------------------- tree reader

[[noreturn]] void bad(const std::string& message) {
  throw ServeError(400, message);
}

// The leaves of `data` in order. Iterative: a body of a million nested
// brackets must not overflow an I/O thread's stack.
void flatten(const Json& data, std::vector<const Json*>& out) {
  std::vector<std::pair<const Json*, size_t>> stack;  // array, next index
  if (!data.is_array()) return out.push_back(&data);
  stack.emplace_back(&data, 0);
  while (!stack.empty()) {
    auto& [array, next] = stack.back();
    if (next == array->size()) {
      stack.pop_back();
      continue;
    }
    const Json& item = (*array)[next++];
    if (item.is_array())
      stack.emplace_back(&item, 0);
    else
      out.push_back(&item);
  }
}

template <class T>
void put(std::vector<uint8_t>& bytes, size_t index, T value) {
  std::memcpy(bytes.data() + index * sizeof(T), &value, sizeof(T));
}

template <class T>
void put_integer(std::vector<uint8_t>& bytes, size_t index, const Json& v, const std::string& where) {
  bool ok = false;
  if (v.is_number_unsigned()) {
    const auto u = v.get<uint64_t>();
    ok = u <= static_cast<uint64_t>(std::numeric_limits<T>::max());
    if (ok) put<T>(bytes, index, static_cast<T>(u));
  } else if (v.is_number_integer()) {
    const auto i = v.get<int64_t>();
    ok = std::numeric_limits<T>::is_signed ? i >= static_cast<int64_t>(std::numeric_limits<T>::min()) &&
                                                 i <= static_cast<int64_t>(std::numeric_limits<T>::max())
                                           : i >= 0 && static_cast<uint64_t>(i) <= std::numeric_limits<T>::max();
    if (ok) put<T>(bytes, index, static_cast<T>(i));
  }
  if (!ok) bad(where + ": " + json_excerpt(v) + " is not an integer in the datatype's range");
}

template <class T>
void put_float(std::vector<uint8_t>& bytes, size_t index, const Json& v, const std::string& where) {
  if (!v.is_number()) bad(where + ": " + json_excerpt(v) + " is not a number");
  if (std::is_same_v<T, float> && !fits_fp32(v.get<double>()))
    bad(where + ": " + json_excerpt(v) + " is beyond the range of FP32");
  put<T>(bytes, index, static_cast<T>(v.get<double>()));
}

void put_value(HostTensor& t, size_t i, const Json& v, const std::string& where) {
  switch (t.datatype) {
    case KILN_DT_BOOL:
      if (!v.is_boolean()) bad(where + ": " + json_excerpt(v) + " is not a boolean");
      t.bytes[i] = v.get<bool>() ? 1 : 0;
      break;
    case KILN_DT_UINT8:
      return put_integer<uint8_t>(t.bytes, i, v, where);
    case KILN_DT_UINT16:
      return put_integer<uint16_t>(t.bytes, i, v, where);
    case KILN_DT_UINT32:
      return put_integer<uint32_t>(t.bytes, i, v, where);
    case KILN_DT_UINT64:
      return put_integer<uint64_t>(t.bytes, i, v, where);
    case KILN_DT_INT8:
      return put_integer<int8_t>(t.bytes, i, v, where);
    case KILN_DT_INT16:
      return put_integer<int16_t>(t.bytes, i, v, where);
    case KILN_DT_INT32:
      return put_integer<int32_t>(t.bytes, i, v, where);
    case KILN_DT_INT64:
      return put_integer<int64_t>(t.bytes, i, v, where);
    case KILN_DT_FP32:
      return put_float<float>(t.bytes, i, v, where);
    case KILN_DT_FP64:
      return put_float<double>(t.bytes, i, v, where);
    default:
      bad(where + ": unsupported datatype");
  }
}

// One request input ({"name", "shape", "datatype", "data"}); `data` may be flat or nested.
HostTensor tensor_from_json(const Json& input) {
  if (!input.is_object()) bad("each input must be an object with name, shape, datatype and data");
  for (const char* key : {"name", "shape", "datatype", "data"})
    if (!input.contains(key)) bad(std::string("an input has no \"") + key + "\"");
  if (!input["name"].is_string()) bad("an input's \"name\" must be a string");
  HostTensor t;
  t.name = input["name"].get<std::string>();
  const std::string where = "input '" + excerpt_text(t.name) + "'";
  if (!input["datatype"].is_string()) bad(where + ": \"datatype\" must be a string");
  const std::string type_name = input["datatype"].get<std::string>();
  t.datatype = datatype_from_name(type_name);
  if (t.datatype == 0) bad(where + ": unknown datatype '" + excerpt_text(type_name) + "'");
  if (t.datatype == KILN_DT_BYTES || t.datatype == KILN_DT_FP16)
    bad(where + ": datatype " + type_name + " is not supported in JSON requests");
  if (!input["shape"].is_array()) bad(where + ": \"shape\" must be an array of non-negative integers");
  int64_t elements = 1;
  for (const auto& d : input["shape"]) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0)
      bad(where + ": \"shape\" must be an array of non-negative integers");
    t.shape.push_back(d.get<int64_t>());
    if (!grow_elements(elements, t.shape.back()))
      bad(where + ": shape " + json_excerpt(input["shape"]) + " is too large");
  }
  std::vector<const Json*> flat;
  if (input["data"].is_array()) flat.reserve(input["data"].size());  // exact when flat, rows when nested
  flatten(input["data"], flat);
  if (static_cast<int64_t>(flat.size()) != t.elements())
    bad(where + ": shape " + json_excerpt(input["shape"]) + " needs " + std::to_string(t.elements()) +
        " values, \"data\" has " + std::to_string(flat.size()));
  t.bytes.resize(flat.size() * datatype_info(t.datatype)->size);
  for (size_t i = 0; i < flat.size(); ++i) put_value(t, i, *flat[i], where);
  return t;
}

}  // namespace

InferBody read_infer_body_with_tree(const std::string& body) {
  // Checked before the tree is built: nothing below recurses on the depth
  // of a value, but a bound is the simplest proof of that.
  if (nests_deeper_than(body, kMaxJsonNesting))
    bad("the request body nests arrays and objects deeper than " + std::to_string(kMaxJsonNesting) + " levels");
  Json request;
  try {
    request = Json::parse(body);
  } catch (const Json::exception& e) {  // parse_error, or out_of_range for a number overflowing a double
    bad(std::string("the request body is not valid JSON: ") + e.what());
  }
  if (!request.is_object()) bad("the request body must be a JSON object");
  if (!request.contains("inputs") || !request["inputs"].is_array())
    bad("the request needs \"inputs\": an array of tensors");
  if (request.contains("id") && !request["id"].is_string()) bad("\"id\" must be a string");
  InferBody out;
  for (const auto& input : request["inputs"]) out.inputs.push_back(tensor_from_json(input));
  if (request.contains("outputs")) {
    if (!request["outputs"].is_array()) bad("\"outputs\" must be an array of {\"name\": ...}");
    for (const auto& o : request["outputs"]) {
      if (!o.is_object() || !o.contains("name") || !o["name"].is_string())
        bad("each requested output needs a \"name\"");
      out.wanted_outputs.push_back(o["name"].get<std::string>());
    }
  }
  if (request.contains("id")) out.id = request["id"].get<std::string>();
  return out;
}

namespace {

// ------------------------------------------------------------------ writer

template <class T>
void append_number(std::string& out, T value) {
  std::array<char, 32> text;
  if constexpr (std::is_floating_point_v<T>) {
    if (!std::isfinite(value)) {
      out += "null";
      return;
    }
  }
  const auto [end, error] = std::to_chars(text.data(), text.data() + text.size(), value);
  out.append(text.data(), end);
  if constexpr (std::is_floating_point_v<T>) {  // 1 -> 1.0: it stays a float to the client
    if (std::find_if(text.data(), end, [](char c) { return c == '.' || c == 'e'; }) == end) out += ".0";
  }
}

template <class T>
void append_values(std::string& out, const HostTensor& t) {
  const auto n = static_cast<size_t>(t.elements());
  for (size_t i = 0; i < n; ++i) {
    if (i > 0) out += ',';
    if constexpr (std::is_same_v<T, bool>) {  // any non-zero byte is true (a bool holding 2 would be undefined)
      out += t.bytes[i] != 0 ? "true" : "false";
    } else {
      T value;
      std::memcpy(&value, t.bytes.data() + i * sizeof(T), sizeof(T));
      append_number(out, value);
    }
  }
}

void append_data(std::string& out, const HostTensor& t) {
  switch (t.datatype) {
    case KILN_DT_BOOL:
      return append_values<bool>(out, t);
    case KILN_DT_UINT8:
      return append_values<uint8_t>(out, t);
    case KILN_DT_UINT16:
      return append_values<uint16_t>(out, t);
    case KILN_DT_UINT32:
      return append_values<uint32_t>(out, t);
    case KILN_DT_UINT64:
      return append_values<uint64_t>(out, t);
    case KILN_DT_INT8:
      return append_values<int8_t>(out, t);
    case KILN_DT_INT16:
      return append_values<int16_t>(out, t);
    case KILN_DT_INT32:
      return append_values<int32_t>(out, t);
    case KILN_DT_INT64:
      return append_values<int64_t>(out, t);
    case KILN_DT_FP32:
      return append_values<float>(out, t);
    case KILN_DT_FP64:
      return append_values<double>(out, t);
    default:
      throw ServeError(500, "output '" + t.name + "' has datatype " + datatype_name(t.datatype) +
                                ", which JSON responses do not support");
  }
}

void append_tensor(std::string& out, const HostTensor& t) {
  out += "{\"name\":";
  out += kiln::json_quote(t.name);
  out += ",\"datatype\":\"";
  out += datatype_info(t.datatype) != nullptr ? datatype_info(t.datatype)->name : "";
  out += "\",\"shape\":[";
  for (size_t i = 0; i < t.shape.size(); ++i) {
    if (i > 0) out += ',';
    append_number(out, t.shape[i]);
  }
  out += "],\"data\":[";
  append_data(out, t);
  out += "]}";
}

}  // namespace

InferBody read_infer_body(const std::string& body) {
  InferBody fast;
  FastReader reader(fast, body.size());
  if (Scanner<FastReader>(body, reader).run() && reader.done()) return fast;
  return read_infer_body_with_tree(body);  // throws the problem, or reads what the fast reader does not
}

void write_infer_response(std::string& out, const std::string& model, int64_t version,
                          const std::optional<std::string>& id, const std::vector<HostTensor>& outputs,
                          const std::vector<std::string>& wanted) {
  out += "{\"model_name\":";
  out += kiln::json_quote(model);
  out += ",\"model_version\":\"";
  append_number(out, version);
  out += '"';
  if (id) {
    out += ",\"id\":";
    out += kiln::json_quote(*id);
  }
  out += ",\"outputs\":[";
  bool first = true;
  for (const auto& o : outputs) {
    if (!wanted.empty() && std::find(wanted.begin(), wanted.end(), o.name) == wanted.end()) continue;
    if (!first) out += ',';
    first = false;
    append_tensor(out, o);
  }
  out += "]}";
}

}  // namespace kiln::serve
