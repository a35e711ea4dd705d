// The runner channel's codec (runner_event.hpp): every event kind round-trips,
// every malformed line is an error (never a crash), and the limits hold.
#include <gtest/gtest.h>
#include <kiln/host/error.hpp>
#include <kiln/host/runner_event.hpp>

#include <cmath>
#include <set>
#include <string>
#include <vector>

namespace {

using kiln::host::decode;
using kiln::host::encode;
using kiln::host::Json;
using kiln::host::kMaxRunnerLineBytes;
using kiln::host::kMaxRunnerValueDepth;
using kiln::host::RunnerEvent;
using kiln::host::RunnerEventKind;

RunnerEvent decoded(const std::string& line) {
  auto result = decode(line);
  EXPECT_TRUE(result.ok()) << line << ": " << result.error;
  return result.ok() ? *result.event : RunnerEvent{};
}

std::string error_of(const std::string& line) {
  const auto result = decode(line);
  EXPECT_FALSE(result.ok()) << line;
  EXPECT_FALSE(result.error.empty()) << line;
  return result.error;
}

// `depth` nested arrays around nothing, as JSON text.
std::string nested(size_t depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

TEST(RunnerEvent, EveryKindRoundTrips) {
  using namespace kiln::host;
  const std::vector<RunnerEvent> events{
      HelloEvent{kRunnerChannelVersion, 4242},
      LogEvent{LogLevel::Debug, "d"},
      LogEvent{LogLevel::Info, "line with \"quotes\"\nand a newline"},
      LogEvent{LogLevel::Warning, "w"},
      LogEvent{LogLevel::Error, "e"},
      MetricEvent{"loss", 0.1, 7},
      MetricEvent{"big", -1e300, INT64_MAX},
      ProgressEvent{0.5, "half"},
      OutputParameterEvent{"p", Json::parse(R"({"a":[1,2.5,"x",null,true],"b":{}})")},
      OutputParameterEvent{"s", "text"},
      OutputMetadataEvent{"model", Json{{"accuracy", 0.9}, {"classes", {"a", "b"}}}},
      ResultEvent{true, 0, ""},
      ResultEvent{false, KILN_ERROR_CANCELLED, "stopped"},
  };
  std::set<RunnerEventKind> kinds;
  for (const auto& event : events) {
    const std::string line = encode(event);
    EXPECT_EQ(line.find('\n'), std::string::npos) << line;
    const RunnerEvent back = decoded(line);
    EXPECT_EQ(kind_of(back), kind_of(event)) << line;
    EXPECT_EQ(event_json(back), event_json(event)) << line;
    EXPECT_EQ(encode(back), line);
    kinds.insert(kind_of(event));
  }
  EXPECT_EQ(kinds.size(), std::variant_size_v<RunnerEvent>) << "every kind is covered";
}

TEST(RunnerEvent, TypedFieldsComeBackTyped) {
  using namespace kiln::host;
  const auto metric = std::get<MetricEvent>(decoded(R"({"event":"metric","name":"acc","value":3,"step":12})"));
  EXPECT_EQ(metric.name, "acc");
  EXPECT_EQ(metric.value, 3.0);
  EXPECT_EQ(metric.step, 12);
  const auto log = std::get<LogEvent>(decoded(R"({"event":"log","level":"warning","message":"m"})"));
  EXPECT_EQ(log.level, LogLevel::Warning);
  const auto result = std::get<ResultEvent>(decoded(R"({"event":"result","ok":false,"code":4,"message":"bad"})"));
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.code, 4);
  EXPECT_EQ(result.message, "bad");
  const auto hello = std::get<HelloEvent>(decoded(R"({"event":"hello","channel":1,"pid":99})"));
  EXPECT_EQ(hello.channel, 1);
  EXPECT_EQ(hello.pid, 99);
}

TEST(RunnerEvent, TheWireFormatIsVersionOne) {
  using namespace kiln::host;
  // Byte for byte what the runner wrote before events were typed.
  EXPECT_EQ(encode(LogEvent{LogLevel::Info, "hi"}), R"({"event":"log","level":"info","message":"hi"})");
  EXPECT_EQ(encode(MetricEvent{"loss", 0.5, 3}), R"({"event":"metric","name":"loss","value":0.5,"step":3})");
  EXPECT_EQ(encode(ProgressEvent{0.25, "m"}), R"({"event":"progress","fraction":0.25,"message":"m"})");
  EXPECT_EQ(encode(OutputParameterEvent{"n", 3}), R"({"event":"output_parameter","name":"n","value":3})");
  EXPECT_EQ(encode(OutputMetadataEvent{"o", Json{{"k", 1}}}),
            R"({"event":"output_metadata","name":"o","metadata":{"k":1}})");
  EXPECT_EQ(encode(ResultEvent{false, 2, "x"}), R"({"event":"result","ok":false,"code":2,"message":"x"})");
  EXPECT_EQ(encode(HelloEvent{1, 7}), R"({"event":"hello","channel":1,"pid":7})");
  EXPECT_EQ(kRunnerChannelVersion, 1);
}

TEST(RunnerEvent, InvalidUtf8IsReplacedNotThrown) {
  using namespace kiln::host;
  const std::string line = encode(LogEvent{LogLevel::Info, "bad \xff byte"});
  const auto log = std::get<LogEvent>(decoded(line));
  EXPECT_EQ(log.message, "bad \xEF\xBF\xBD byte");
}

TEST(RunnerEvent, UnknownFieldsAreIgnoredAndOptionalOnesDefault) {
  using namespace kiln::host;
  const auto log = std::get<LogEvent>(
      decoded(R"({"event":"log","level":"info","message":"m","colour":"red","extra":{"deep":[1]}})"));
  EXPECT_EQ(log.message, "m");
  const auto progress = std::get<ProgressEvent>(decoded(R"({"event":"progress","fraction":1})"));
  EXPECT_EQ(progress.fraction, 1.0);
  EXPECT_EQ(progress.message, "");
}

TEST(RunnerEvent, MalformedLinesAreErrors) {
  const std::vector<std::string> lines{
      "",
      "   ",
      "42",
      "\"text\"",
      "null",
      "[1,2]",
      "{",
      "{\"event\":\"log\"",
      "not json",
      "\xff\xfe not json",
      "{\"event\":\"log\",\"level\":\"info\",\"message\":\"\xff\"}",  // invalid UTF-8 inside JSON
      "{}",
      "{\"event\":5}",
      "{\"event\":null}",
      "{\"event\":\"nope\"}",
      "{\"event\":\"LOG\",\"level\":\"info\",\"message\":\"m\"}",
      "{\"event\":\"log\",\"level\":\"info\",\"message\":\"m\"} trailing",
      "{\"event\":\"log\",\"level\":\"info\",\"message\":\"m\"}{\"event\":\"log\"}",
  };
  for (const auto& line : lines) error_of(line);
  EXPECT_NE(error_of("{\"event\":\"nope\"}").find("unknown event \"nope\""), std::string::npos);
  EXPECT_NE(error_of("42").find("not a JSON object"), std::string::npos);
  EXPECT_NE(error_of("{").find("not JSON"), std::string::npos);
}

// Found by fuzz_runner_event (issue 17): nlohmann's parser throws
// out_of_range, not parse_error, for a number past double's range, and it
// escaped decode(), which promises never to throw.
TEST(RunnerEvent, ANumberPastDoublesRangeIsAMalformedLineNotAnException) {
  for (const std::string line : {"{\"event\":\"metric\",\"name\":\"acc\",\"value\":1e400,\"step\":1}",
                                 "{\"event\":\"output_parameter\",\"name\":\"p\",\"value\":[-2.1e308]}"}) {
    kiln::host::DecodedLine decoded;
    ASSERT_NO_THROW(decoded = kiln::host::decode(line)) << line;
    EXPECT_FALSE(decoded.ok()) << line;
    EXPECT_EQ(decoded.error, "not JSON (a number out of range)") << line;
  }
}

TEST(RunnerEvent, WrongOrMissingFieldTypesAreRefused) {
  const std::vector<std::string> lines{
      R"({"event":"hello","channel":"1","pid":1})",
      R"({"event":"hello","channel":1.5,"pid":1})",
      R"({"event":"hello","pid":1})",
      R"({"event":"log","level":"loud","message":"m"})",
      R"({"event":"log","level":20,"message":"m"})",
      R"({"event":"log","level":"info"})",
      R"({"event":"log","level":"info","message":["m"]})",
      R"({"event":"metric","name":5,"value":1,"step":0})",
      R"({"event":"metric","name":"m","value":"1","step":0})",
      R"({"event":"metric","name":"m","value":null,"step":0})",
      R"({"event":"metric","name":"m","value":1,"step":1.5})",
      R"({"event":"metric","name":"m","value":1,"step":18446744073709551615})",
      R"({"event":"metric","name":"m","value":1})",
      R"({"event":"progress","fraction":"x"})",
      R"({"event":"progress","message":"m"})",
      R"({"event":"progress","fraction":0.5,"message":5})",
      R"({"event":"output_parameter","name":"p"})",
      R"({"event":"output_parameter","name":3,"value":1})",
      R"({"event":"output_metadata","name":"o","metadata":[]})",
      R"({"event":"output_metadata","name":"o"})",
      R"({"event":"result","ok":"yes","code":0,"message":""})",
      R"({"event":"result","ok":true,"code":"0","message":""})",
      R"({"event":"result","ok":true,"message":""})",
      R"({"event":"result","ok":true,"code":0})",
  };
  for (const auto& line : lines) error_of(line);
  EXPECT_NE(error_of(R"({"event":"metric","name":5,"value":1,"step":0})").find("\"name\": a string"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"event":"log","level":"info"})").find("\"message\""), std::string::npos);
}

TEST(RunnerEvent, ANonFiniteMetricDoesNotSurviveTheWire) {
  using namespace kiln::host;
  // JSON has no NaN: it is written as null, which a reader refuses.
  error_of(encode(MetricEvent{"loss", std::nan(""), 0}));
}

TEST(RunnerEvent, ValuesNestedTooDeepAreRefusedBeforeParsing) {
  const auto line = [](const std::string& value) {
    return "{\"event\":\"output_parameter\",\"name\":\"p\",\"value\":" + value + "}";
  };
  const auto ok = decoded(line(nested(kMaxRunnerValueDepth)));
  EXPECT_FALSE(
      kiln::host::nested_deeper_than(std::get<kiln::host::OutputParameterEvent>(ok).value, kMaxRunnerValueDepth));
  EXPECT_NE(error_of(line(nested(kMaxRunnerValueDepth + 1))).find("nested deeper than 64"), std::string::npos);
  EXPECT_NE(error_of(line(nested(100000))).find("nested deeper than 64"), std::string::npos);
  // Unbalanced, as a hostile writer would send it.
  error_of(line(std::string(100000, '[')));
  error_of(std::string(100000, '{'));
  // Brackets inside strings are text, not nesting.
  const auto text = decoded(line("\"" + std::string(1000, '[') + "\\\"" + std::string(1000, '{') + "\""));
  EXPECT_EQ(std::get<kiln::host::OutputParameterEvent>(text).value.get<std::string>().size(), 2001u);
  const auto metadata =
      "{\"event\":\"output_metadata\",\"name\":\"o\",\"metadata\":{\"k\":" + nested(kMaxRunnerValueDepth) + "}}";
  error_of(metadata);
}

TEST(RunnerEvent, EncodingAValueNestedTooDeepThrowsWithoutRecursing) {
  using namespace kiln::host;
  const Json deep = Json::parse(nested(100000));  // nlohmann parses (and destroys) iteratively
  EXPECT_TRUE(nested_deeper_than(deep, kMaxRunnerValueDepth));
  EXPECT_FALSE(nested_deeper_than(Json::parse(nested(64)), kMaxRunnerValueDepth));
  EXPECT_FALSE(nested_deeper_than(Json(3), 0));
  EXPECT_TRUE(nested_deeper_than(Json::array(), 0));
  try {
    require_shallow(deep, "output parameter 'p'");
    ADD_FAILURE() << "no throw";
  } catch (const HostError& e) {
    EXPECT_EQ(e.code(), KILN_ERROR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(e.what()).find("output parameter 'p' is nested deeper than 64 levels"), std::string::npos);
  }
}

TEST(RunnerEvent, LinesOverTheLimitAreRefused) {
  const std::string message(kMaxRunnerLineBytes, 'x');
  EXPECT_NE(error_of("{\"event\":\"log\",\"level\":\"info\",\"message\":\"" + message + "\"}").find("longer than"),
            std::string::npos);
}

TEST(RunnerEvent, LogLevelsFromTheAbi) {
  using kiln::host::LogLevel;
  EXPECT_EQ(kiln::host::log_level_from_abi(KILN_LOG_DEBUG), LogLevel::Debug);
  EXPECT_EQ(kiln::host::log_level_from_abi(KILN_LOG_INFO), LogLevel::Info);
  EXPECT_EQ(kiln::host::log_level_from_abi(KILN_LOG_WARNING), LogLevel::Warning);
  EXPECT_EQ(kiln::host::log_level_from_abi(KILN_LOG_ERROR), LogLevel::Error);
  EXPECT_EQ(kiln::host::log_level_from_abi(99), LogLevel::Error);
  EXPECT_STREQ(kiln::host::log_level_text(LogLevel::Warning), "warning");
}

// Feeds `chunks` to a splitter; returns the lines and the count of dropped ones.
struct Split {
  std::vector<std::string> lines;
  int dropped = 0;
  kiln::host::RunnerLineSplitter splitter;
  void feed(std::string_view bytes) {
    splitter.feed(
        bytes, [&](std::string_view line) { lines.emplace_back(line); }, [&] { ++dropped; });
  }
};

TEST(RunnerLineSplitter, JoinsLinesAcrossChunks) {
  Split s;
  s.feed("ab");
  s.feed("c\nd\n\ne");
  s.feed("f");
  s.feed("\n");
  EXPECT_EQ(s.lines, (std::vector<std::string>{"abc", "d", "", "ef"}));
  EXPECT_EQ(s.dropped, 0);
}

TEST(RunnerLineSplitter, AnOverlongLineIsDroppedOnceInBoundedMemory) {
  Split s;
  s.feed("first\n");
  const std::string chunk(65536, 'x');
  for (int i = 0; i < 50 * 16; ++i) {  // 50 MiB without a newline
    s.feed(chunk);
    ASSERT_LE(s.splitter.buffered(), 2 * kMaxRunnerLineBytes);
  }
  EXPECT_EQ(s.dropped, 1);
  s.feed("tail of the long line\nnext\n");
  EXPECT_EQ(s.lines, (std::vector<std::string>{"first", "next"}));
  EXPECT_EQ(s.dropped, 1);
}

TEST(RunnerLineSplitter, TheLimitIsInclusive) {
  Split s;
  s.feed(std::string(kMaxRunnerLineBytes, 'a') + "\n");
  s.feed(std::string(kMaxRunnerLineBytes + 1, 'b') + "\n");
  s.feed(std::string(kMaxRunnerLineBytes, 'c'));
  s.feed("c\nok\n");
  ASSERT_EQ(s.lines.size(), 2u);
  EXPECT_EQ(s.lines[0].size(), kMaxRunnerLineBytes);
  EXPECT_EQ(s.lines[1], "ok");
  EXPECT_EQ(s.dropped, 2);
}

}  // namespace
