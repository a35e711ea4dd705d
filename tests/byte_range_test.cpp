// The Range header parser (host/http/byte_range.cpp): each form RFC 9110
// gives for one byte range, what is ignored (the whole file is then sent)
// and what is unsatisfiable (416).
#include "byte_range.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace kiln::test {
namespace {

using http::ByteRange;
using Kind = ByteRange::Kind;

::testing::AssertionResult is_range(const ByteRange& r, uint64_t first, uint64_t last) {
  if (r.kind != Kind::Satisfiable) return ::testing::AssertionFailure() << "not satisfiable";
  if (r.first != first || r.last != last)
    return ::testing::AssertionFailure() << "bytes " << r.first << "-" << r.last << ", not " << first << "-" << last;
  return ::testing::AssertionSuccess();
}

TEST(ByteRange, TheThreeFormsOfOneRange) {
  EXPECT_TRUE(is_range(http::parse_byte_range("bytes=0-99", 1000), 0, 99));
  EXPECT_TRUE(is_range(http::parse_byte_range("bytes=500-", 1000), 500, 999));
  EXPECT_TRUE(is_range(http::parse_byte_range("bytes=-10", 1000), 990, 999));
  EXPECT_TRUE(is_range(http::parse_byte_range("bytes=-5000", 1000), 0, 999));  // more than there is: all of it
  EXPECT_TRUE(is_range(http::parse_byte_range("bytes=900-5000", 1000), 900, 999));  // the end cut to the size
  EXPECT_TRUE(is_range(http::parse_byte_range(" Bytes=3 - 4 ", 10), 3, 4));
  EXPECT_EQ(http::parse_byte_range("bytes=0-99", 1000).length(), 100u);
  EXPECT_EQ(http::content_range(http::parse_byte_range("bytes=0-99", 1000), 1000), "bytes 0-99/1000");
}

TEST(ByteRange, PastTheEndIsUnsatisfiable) {
  EXPECT_EQ(http::parse_byte_range("bytes=1000-", 1000).kind, Kind::Unsatisfiable);
  EXPECT_EQ(http::parse_byte_range("bytes=5000-6000", 1000).kind, Kind::Unsatisfiable);
  EXPECT_EQ(http::parse_byte_range("bytes=-0", 1000).kind, Kind::Unsatisfiable);
  EXPECT_EQ(http::parse_byte_range("bytes=0-", 0).kind, Kind::Unsatisfiable);
  EXPECT_EQ(http::content_range(http::parse_byte_range("bytes=1000-", 1000), 1000), "bytes */1000");
}

TEST(ByteRange, AnythingElseIsIgnored) {
  for (const std::string& value : std::vector<std::string>{
           "", "bytes", "bytes=", "bytes=-", "items=0-1", "bytes=a-b", "bytes=5-1", "bytes=0-1,3-4", "bytes=1", "bytes=+1-2",
        "bytes=99999999999999999999-", "bytes=0x1-2", "bytes=1-2-3", std::string("bytes=0-1\0", 10)})
    EXPECT_EQ(http::parse_byte_range(value, 1000).kind, Kind::Ignored) << value;
  // Too long to be read at all, even when it would be a range.
  EXPECT_EQ(http::parse_byte_range("bytes=" + std::string(http::kMaxRangeHeader, '0') + "1-2", 1000).kind,
            Kind::Ignored);
}

}  // namespace
}  // namespace kiln::test
