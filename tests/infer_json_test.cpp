// The JSON of an inference call (host/serve/infer_json.cpp): the streaming
// reader fills the same tensors as the protocol says, whatever the key order
// or nesting; every malformed body is a ServeError(400) naming the problem;
// the writer's numbers read back to the exact values.
#include <kiln/host/json.hpp>
#include <kiln/serve/infer_json.hpp>
#include <kiln/serving.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

namespace {

using kiln::serve::HostTensor;
using kiln::serve::InferBody;
using kiln::serve::read_infer_body;
using kiln::serve::ServeError;
using kiln::serve::write_infer_response;
using Json = kiln::host::Json;

template <class T>
std::vector<T> values_of(const HostTensor& t) {
  std::vector<T> out(t.bytes.size() / sizeof(T));
  std::memcpy(out.data(), t.bytes.data(), t.bytes.size());
  return out;
}

template <class T>
HostTensor tensor_of(const std::string& name, KilnDataType type, std::vector<int64_t> shape, const std::vector<T>& v) {
  HostTensor t{name, type, std::move(shape), {}};
  t.bytes.resize(v.size() * sizeof(T));
  std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
  return t;
}

// The message of the ServeError that `body` raises ("" when it reads).
std::string error_of(const std::string& body) {
  try {
    read_infer_body(body);
  } catch (const ServeError& e) {
    EXPECT_EQ(e.status(), 400) << body;
    return e.what();
  }
  return "";
}

TEST(InferJson, ReadsEveryDatatypeInAnyKeyOrder) {
  const auto body = read_infer_body(R"({
    "id": "r\"1", "parameters": {"x": [1, {"y": null}], "inputs": 3},
    "inputs": [
      {"name": "f", "datatype": "FP32", "shape": [2, 2], "data": [[1.5, -2], [3e2, 4]]},
      {"data": [1, 2.25], "shape": [2], "name": "d", "datatype": "FP64"},
      {"name": "b", "shape": [3], "datatype": "BOOL", "data": [true, false, true], "parameters": {"p": 1}},
      {"name": "i8", "shape": [2], "datatype": "INT8", "data": [-128, 127]},
      {"name": "u16", "shape": [2], "datatype": "UINT16", "data": [0, 65535]},
      {"name": "i32", "shape": [1], "datatype": "INT32", "data": [-2147483648]},
      {"name": "i64", "shape": [2], "datatype": "INT64", "data": [-9223372036854775808, 9223372036854775807]},
      {"name": "u64", "shape": [1], "datatype": "UINT64", "data": [18446744073709551615]},
      {"name": "u8", "shape": [0, 3], "datatype": "UINT8", "data": []}
    ],
    "outputs": [{"name": "probabilities", "parameters": {"binary_data": false}}]
  })");
  ASSERT_EQ(body.inputs.size(), 9u);
  EXPECT_EQ(body.id, std::optional<std::string>("r\"1"));
  EXPECT_EQ(body.wanted_outputs, std::vector<std::string>{"probabilities"});
  const auto& f = body.inputs[0];
  EXPECT_EQ(f.name, "f");
  EXPECT_EQ(f.datatype, KILN_DT_FP32);
  EXPECT_EQ(f.shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(values_of<float>(f), (std::vector<float>{1.5f, -2.f, 300.f, 4.f}));
  // Data before its datatype (the tree reader's case) reads the same.
  EXPECT_EQ(body.inputs[1].datatype, KILN_DT_FP64);
  EXPECT_EQ(values_of<double>(body.inputs[1]), (std::vector<double>{1, 2.25}));
  EXPECT_EQ(values_of<uint8_t>(body.inputs[2]), (std::vector<uint8_t>{1, 0, 1}));
  EXPECT_EQ(values_of<int8_t>(body.inputs[3]), (std::vector<int8_t>{-128, 127}));
  EXPECT_EQ(values_of<uint16_t>(body.inputs[4]), (std::vector<uint16_t>{0, 65535}));
  EXPECT_EQ(values_of<int32_t>(body.inputs[5]), (std::vector<int32_t>{std::numeric_limits<int32_t>::min()}));
  EXPECT_EQ(values_of<int64_t>(body.inputs[6]),
            (std::vector<int64_t>{std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()}));
  EXPECT_EQ(values_of<uint64_t>(body.inputs[7]), (std::vector<uint64_t>{std::numeric_limits<uint64_t>::max()}));
  EXPECT_TRUE(body.inputs[8].bytes.empty());
  EXPECT_EQ(body.inputs[8].shape, (std::vector<int64_t>{0, 3}));
}

TEST(InferJson, ReadsEscapesOddSpacingAndNumberForms) {
  // Escapes and non-ASCII text go the tree reader's way; the result is the same.
  const auto body = read_infer_body(
      "{ \"inputs\" :[ {\"name\":\"in\\u0070ut\\n\",\r\n\"datatype\" : \"FP64\",\t\"shape\":[ 6 ],"
      "\"data\":[ -0 , 1E2,2.5e-3 ,-1.25E+1, 0.0, 123456789012 ]} ], \"id\": \"\u00e9t\u00e9\" }");
  ASSERT_EQ(body.inputs.size(), 1u);
  EXPECT_EQ(body.inputs[0].name, "input\n");
  EXPECT_EQ(body.id, std::optional<std::string>("\u00e9t\u00e9"));
  EXPECT_EQ(values_of<double>(body.inputs[0]), (std::vector<double>{0, 100, 0.0025, -12.5, 0, 123456789012.0}));
  // Deep nesting within the data flattens.
  const auto deep = read_infer_body(
      R"({"inputs": [{"name": "x", "datatype": "INT32", "shape": [2, 2], "data": [[[[[1]]], [2]], [[3, [4]]]]}]})");
  EXPECT_EQ(values_of<int32_t>(deep.inputs[0]), (std::vector<int32_t>{1, 2, 3, 4}));
  // What JSON forbids stays an error whichever reader meets it first.
  for (const std::string bad : {"01", "1.", ".5", "+1", "1e", "0x10", "NaN", "1e400", "tru"}) {
    const auto message =
        error_of(R"({"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [)" + bad + "]}]}");
    EXPECT_NE(message.find("not valid JSON"), std::string::npos) << bad << " -> " << message;
  }
}

TEST(InferJson, StreamingAndTreeReadersAgree) {
  // The same tensor written with datatype first (streamed) and data first
  // (read through the tree): the bytes must be identical, for values that
  // need rounding to FP32 too.
  std::mt19937_64 random(7);
  std::uniform_real_distribution<double> real(-1e6, 1e6);
  std::string data;
  for (int i = 0; i < 200; ++i) data += (i ? "," : "") + Json(real(random)).dump();
  data += ",16777217,-9007199254740993";
  const std::string shape = "[202]";
  const auto streamed = read_infer_body(R"({"inputs": [{"name": "x", "datatype": "FP32", "shape": )" + shape +
                                        R"(, "data": [)" + data + "]}]}");
  const auto tree = read_infer_body(R"({"inputs": [{"name": "x", "data": [)" + data + R"(], "shape": )" + shape +
                                    R"(, "datatype": "FP32"}]})");
  ASSERT_EQ(streamed.inputs.size(), 1u);
  EXPECT_EQ(streamed.inputs[0].bytes, tree.inputs[0].bytes);
  EXPECT_EQ(streamed.inputs[0].shape, tree.inputs[0].shape);
}

// What a reader makes of `body`: the tensors, or the error's status and message.
std::string outcome(const std::string& body, InferBody (*read)(const std::string&)) {
  try {
    const auto b = read(body);
    std::string out = "id=" + b.id.value_or("-") + ";";
    for (const auto& w : b.wanted_outputs) out += "out=" + w + ";";
    for (const auto& t : b.inputs) {
      out += t.name + ":" + std::to_string(t.datatype) + ":";
      for (const auto d : t.shape) out += std::to_string(d) + ",";
      out += ":" + std::string(t.bytes.begin(), t.bytes.end()) + ";";
    }
    return out;
  } catch (const ServeError& e) {
    return "error " + std::to_string(e.status()) + ": " + e.what();
  }
}

TEST(InferJson, MutatedBodiesReadTheSameEitherWay) {
  // Thousands of small corruptions of valid bodies: the fast path must give
  // exactly what the tree reader gives (the same tensors, or a 400 with the
  // same message), and never anything else.
  const std::vector<std::string> seeds{
      R"({"id": "a", "inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [[1.5, -2, 3e1], [4, 5, 6]]}]})",
      R"({"inputs": [{"name": "b", "shape": [3], "datatype": "BOOL", "data": [true, false, null]}], "parameters": {"k": [1]}})",
      R"({"inputs": [{"name": "i", "shape": [2], "datatype": "INT8", "data": [-128, 127]},
          {"name": "u", "shape": [1], "datatype": "UINT64", "data": [18446744073709551615]}],
          "outputs": [{"name": "y"}]})",
      R"({"inputs": [{"name": "d", "datatype": "FP64", "shape": [2], "data": [0.1, -0e-1]}]})",
  };
  std::mt19937 random(2026);
  const std::string alphabet = "{}[]\",:.-+eE0123456789 tfnaul\\\n\x01\xc3";
  int fast_differs = 0, checked = 0;
  for (const auto& seed : seeds) {
    for (int i = 0; i < 1500; ++i) {
      std::string body = seed;
      const int edits = 1 + static_cast<int>(random() % 3);
      for (int e = 0; e < edits && !body.empty(); ++e) {
        const size_t at = random() % body.size();
        const char c = alphabet[random() % alphabet.size()];
        switch (random() % 3) {
          case 0:
            body[at] = c;
            break;
          case 1:
            body.insert(body.begin() + static_cast<std::ptrdiff_t>(at), c);
            break;
          default:
            body.erase(at, 1);
        }
      }
      const auto fast = outcome(body, &read_infer_body);
      const auto tree = outcome(body, &kiln::serve::read_infer_body_with_tree);
      ++checked;
      if (fast != tree) ++fast_differs;
      EXPECT_EQ(fast, tree) << body;
      if (fast_differs > 5) FAIL() << "stopping after 5 differences";
    }
  }
  EXPECT_EQ(checked, 6000);
}

TEST(InferJson, MalformedBodiesNameTheProblem) {
  const auto input = [](const std::string& fields) { return R"({"inputs": [{)" + fields + "}]}"; };
  const std::vector<std::pair<std::string, std::string>> cases{
      {"{\"inputs\": [", "not valid JSON"},
      {"[1, 2]", "must be a JSON object"},
      {"{}", "needs \"inputs\""},
      {R"({"inputs": {}})", "needs \"inputs\""},
      {R"({"inputs": [], "id": 3})", "\"id\" must be a string"},
      {R"({"inputs": [], "outputs": {}})", "\"outputs\" must be an array"},
      {R"({"inputs": [], "outputs": [{"parameters": {}}]})", "needs a \"name\""},
      {R"({"inputs": [7]})", "each input must be an object"},
      {input(R"("name": "x", "shape": [1], "datatype": "FP32")"), "has no \"data\""},
      {input(R"("name": 1, "shape": [1], "datatype": "FP32", "data": [1])"), "\"name\" must be a string"},
      {input(R"("name": "x", "shape": [1], "datatype": "FP33", "data": [1])"), "unknown datatype 'FP33'"},
      {input(R"("name": "x", "shape": [1], "datatype": "BYTES", "data": ["a"])"), "not supported"},
      {input(R"("name": "x", "shape": [-1], "datatype": "FP32", "data": [1])"), "non-negative integers"},
      {input(R"("name": "x", "shape": [1.5], "datatype": "FP32", "data": [1])"), "non-negative integers"},
      {input(R"("name": "x", "shape": [1099511627777], "datatype": "FP32", "data": [1])"), "too large"},
      {input(R"("name": "x", "shape": [4294967296, 4294967296], "datatype": "FP32", "data": [])"), "too large"},
      {input(R"("name": "x", "shape": [0, 2199023255552], "datatype": "FP32", "data": [])"), "too large"},
      {input(R"("name": "x", "shape": [1], "datatype": "FP32", "data": [1e39])"), "beyond the range of FP32"},
      {input(R"("name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2])"), "needs 3 values"},
      {input(R"("name": "x", "shape": [2], "datatype": "FP32", "data": [1, "a"])"), "\"a\" is not a number"},
      {input(R"("name": "x", "shape": [1], "datatype": "FP32", "data": [null])"), "null is not a number"},
      {input(R"("name": "x", "shape": [1], "datatype": "INT8", "data": [128])"), "128 is not an integer"},
      {input(R"("name": "x", "shape": [1], "datatype": "UINT32", "data": [-1])"), "-1 is not an integer"},
      {input(R"("name": "x", "shape": [1], "datatype": "INT32", "data": [1.5])"), "1.5 is not an integer"},
      {input(R"("name": "x", "shape": [1], "datatype": "BOOL", "data": [1])"), "1 is not a boolean"},
  };
  for (const auto& [body, expected] : cases) {
    const auto message = error_of(body);
    EXPECT_NE(message.find(expected), std::string::npos) << body << " -> " << message;
  }
}

// Issue 17: a tensor whose "data" held 100 000 nested objects overflowed the
// stack while the error message quoted the value. Every deep body, wherever
// the nesting is, is now a 400 naming the limit, read without recursion.
TEST(InferJson, DeepNestingIsA400WhereverItIs) {
  constexpr size_t kLevels = 100000;
  std::string objects, arrays, mixed;
  for (size_t i = 0; i < kLevels; ++i) {
    objects += "{\"a\":";
    arrays += '[';
    mixed += i % 2 == 0 ? "[" : "{\"b\":";
  }
  objects += "1";
  arrays += "1";
  mixed += "1";
  for (size_t i = kLevels; i-- > 0;) {
    objects += '}';
    arrays += ']';
    mixed += i % 2 == 0 ? "]" : "}";
  }
  const auto input = [](const std::string& data) {
    return R"({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": )" + data + "}]}";
  };
  const std::vector<std::string> bodies{
      input("[" + objects + "]"),                                    // a leaf of data (the crash)
      input(objects),                                                // data itself
      input(arrays),                                                 // rows nested past any rank
      input("[" + mixed + "]"),                                      // both kinds in turn
      R"({"inputs": [], "parameters": )" + objects + "}",            // a value the reader skips
      R"({"inputs": [], "id": )" + arrays + "}",                     // a value of the wrong type
      arrays,                                                        // the body itself
      R"({"inputs": [{"name": "x", "shape": )" + arrays + "}]}",     // the shape
  };
  for (const auto& body : bodies) {
    const auto message = error_of(body);  // 400, checked there
    EXPECT_NE(message.find("nests arrays and objects deeper than 64 levels"), std::string::npos)
        << body.substr(0, 80) << " -> " << message.substr(0, 200);
    EXPECT_LT(message.size(), 512u);
  }
  // Brackets inside strings are text, not nesting.
  const std::string brackets(1000, '[');
  const auto read = read_infer_body(R"({"id": ")" + brackets + R"(", "inputs": [{"name": "x", "shape": [1], )"
                                    R"("datatype": "FP32", "data": [[[[1]]]]}]})");
  EXPECT_EQ(read.id, brackets);
  EXPECT_EQ(values_of<float>(read.inputs.at(0)), std::vector<float>{1.f});
}

// Error messages quote a bounded excerpt of the offending value, never all of it.
TEST(InferJson, ErrorMessagesQuoteABoundedExcerpt) {
  const auto input = [](const std::string& shape, const std::string& data) {
    return R"({"inputs": [{"name": "x", "datatype": "FP32", "shape": )" + shape + R"(, "data": )" + data + "}]}";
  };
  const std::string long_string = "\"" + std::string(1 << 20, 'z') + "\"";
  std::string big_object = "{\"k\": [";
  for (int i = 0; i < 100000; ++i) big_object += (i > 0 ? "," : "") + std::to_string(i);
  big_object += "]}";
  std::string many_dims = "[";
  for (int i = 0; i < 100000; ++i) many_dims += i > 0 ? ",0" : "0";
  many_dims += "]";
  // A string cut mid-character still words as valid UTF-8 (the message is JSON later).
  std::string accents = "\"" + std::string(63, 'a');
  for (int i = 0; i < 100; ++i) accents += "\u00e9";
  accents += "\"";
  const std::vector<std::pair<std::string, std::string>> cases{
      {input("[1]", "[" + long_string + "]"), "\"zzzz"},
      {input("[1]", "[" + big_object + "]"), "{\"k\":[0,1,2"},
      {input(many_dims, "[1, 2]"), "[0,0,0"},
      {input("[1]", "[" + accents + "]"), "\"aaaa"},
  };
  for (const auto& [body, expected] : cases) {
    const auto message = error_of(body);
    EXPECT_NE(message.find(expected), std::string::npos) << message.substr(0, 300);
    EXPECT_NE(message.find("..."), std::string::npos) << message.substr(0, 300);
    EXPECT_LT(message.size(), 512u) << message.substr(0, 300);
    const Json error{{"error", message}};
    EXPECT_NO_THROW((void)error.dump());
  }
}

TEST(InferJson, WrittenNumbersReadBackExactly) {
  std::mt19937 random(11);
  std::uniform_real_distribution<float> unit(-1.f, 1.f);
  std::vector<float> floats{
      0.f, 1.f, -0.5f, 1e-30f, 3.4e38f, 0.1f, 16777216.f, std::nanf(""), std::numeric_limits<float>::infinity()};
  for (int i = 0; i < 500; ++i) floats.push_back(unit(random) * std::pow(10.f, static_cast<float>(i % 20 - 10)));
  const std::vector<double> doubles{0.1, -1e300, 5e-324, 2.0};
  const std::vector<int64_t> ints{std::numeric_limits<int64_t>::min(), 0, std::numeric_limits<int64_t>::max()};
  const std::vector<uint64_t> big{std::numeric_limits<uint64_t>::max()};
  const std::vector<uint8_t> bits{1, 0, 2};  // a runtime may say true with any non-zero byte
  const std::vector<HostTensor> outputs{
      tensor_of("f", KILN_DT_FP32, {static_cast<int64_t>(floats.size())}, floats),
      tensor_of("d", KILN_DT_FP64, {2, 2}, doubles),
      tensor_of("i", KILN_DT_INT64, {3}, ints),
      tensor_of("u", KILN_DT_UINT64, {1}, big),
      tensor_of("b", KILN_DT_BOOL, {3}, bits),
  };
  std::string text;
  write_infer_response(text, "m\n\"x", 3, std::string("id\x01"), outputs, {});
  const auto j = Json::parse(text);
  EXPECT_EQ(j["model_name"], "m\n\"x");
  EXPECT_EQ(j["model_version"], "3");
  EXPECT_EQ(j["id"], "id\x01");
  ASSERT_EQ(j["outputs"].size(), outputs.size());
  const auto& f = j["outputs"][0];
  EXPECT_EQ(f["name"], "f");
  EXPECT_EQ(f["datatype"], "FP32");
  EXPECT_EQ(f["shape"], Json::array({static_cast<int64_t>(floats.size())}));
  for (size_t i = 0; i < floats.size(); ++i) {
    if (!std::isfinite(floats[i])) {
      EXPECT_TRUE(f["data"][i].is_null()) << i;
      continue;
    }
    EXPECT_TRUE(f["data"][i].is_number_float()) << f["data"][i];  // 1 is written 1.0
    EXPECT_EQ(static_cast<float>(f["data"][i].get<double>()), floats[i]) << f["data"][i];
  }
  for (size_t i = 0; i < doubles.size(); ++i) EXPECT_EQ(j["outputs"][1]["data"][i].get<double>(), doubles[i]);
  EXPECT_EQ(j["outputs"][2]["data"].get<std::vector<int64_t>>(), ints);
  EXPECT_EQ(j["outputs"][3]["data"][0].get<uint64_t>(), big[0]);
  EXPECT_EQ(j["outputs"][4]["data"], Json::array({true, false, true}));

  std::string only;
  write_infer_response(only, "m", 1, std::nullopt, outputs, {"i"});
  const auto k = Json::parse(only);
  EXPECT_FALSE(k.contains("id"));
  ASSERT_EQ(k["outputs"].size(), 1u);
  EXPECT_EQ(k["outputs"][0]["name"], "i");
}

}  // namespace
