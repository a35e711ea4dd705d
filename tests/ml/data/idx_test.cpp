// data.idx: MNIST-family IDX files, plain and gzipped, and their failures.
#include "data_test_support.hpp"

namespace kiln::data_test {
namespace {

std::string idx(const std::vector<uint32_t>& dims, const std::vector<uint8_t>& data, uint8_t type = 0x08) {
  std::string out = {0, 0, static_cast<char>(type), static_cast<char>(dims.size())};
  for (const auto d : dims)
    for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((d >> shift) & 0xff);
  out.append(data.begin(), data.end());
  return out;
}

// Three 2x3 images whose pixel k of image i is 10 * i + k.
std::vector<uint8_t> pixels() {
  std::vector<uint8_t> p;
  for (int i = 0; i < 3; ++i)
    for (int k = 0; k < 6; ++k) p.push_back(static_cast<uint8_t>(10 * i + k));
  return p;
}

TEST(DataIdx, ReadsGzippedImagesAndLabelsAsU8) {
  TempDir dir;
  write_gzip(dir / "images.gz", idx({3, 2, 3}, pixels()));
  kiln::test::write_text(dir / "labels", idx({3}, {7, 0, 9}));
  RecordingSink sink;
  const auto outcome = run(
      "data.idx", {{"images", (dir / "images.gz").string()}, {"labels", (dir / "labels").string()}}, dir.path(), sink);
  ASSERT_TRUE(outcome.ok) << outcome.message;
  const auto d = output(dir.path(), "data");
  EXPECT_EQ(d.features.dtype, ml::DType::U8);
  EXPECT_EQ(d.features.shape, (std::vector<int64_t>{3, 1, 2, 3}));
  EXPECT_EQ(d.schema.feature_shape, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(d.features.data<uint8_t>()[2 * 6 + 5], 25);
  EXPECT_EQ(labels(d), (std::vector<int64_t>{7, 0, 9}));
  EXPECT_EQ(d.schema.label->classes.size(), 10u);
  EXPECT_EQ(d.schema.label->classes[9], "9");
  EXPECT_EQ(metric(sink, "rows"), 3);
}

TEST(DataIdx, UnlabeledAndNamedClasses) {
  TempDir dir;
  kiln::test::write_text(dir / "images", idx({3, 2, 3}, pixels()));
  kiln::test::write_text(dir / "labels", idx({3}, {1, 0, 1}));
  RecordingSink sink;
  ASSERT_TRUE(run("data.idx", {{"images", (dir / "images").string()}}, dir.path(), sink).ok);
  EXPECT_FALSE(output(dir.path(), "data").labels.has_value());
  TempDir dir2;
  ASSERT_TRUE(run("data.idx",
                  {{"images", (dir / "images").string()},
                   {"labels", (dir / "labels").string()},
                   {"class_names", {"shirt", "shoe"}}},
                  dir2.path(), sink)
                  .ok);
  EXPECT_EQ(output(dir2.path(), "data").schema.label->classes, (std::vector<std::string>{"shirt", "shoe"}));
}

TEST(DataIdx, RejectsBadMagicTruncationMismatchAndUnnamedLabels) {
  TempDir dir;
  const auto images = idx({3, 2, 3}, pixels());
  kiln::test::write_text(dir / "images", images);
  kiln::test::write_text(dir / "truncated", images.substr(0, images.size() - 4));
  kiln::test::write_text(dir / "magic", "\x01\x02\x08\x03" + images.substr(4));
  kiln::test::write_text(dir / "floats", idx({3, 2, 3}, pixels(), 0x0d));
  kiln::test::write_text(dir / "two_labels", idx({2}, {0, 1}));
  kiln::test::write_text(dir / "big_label", idx({3}, {0, 1, 5}));
  kiln::test::write_text(dir / "none", idx({0, 2, 3}, {}));
  const std::vector<std::pair<Json, std::string>> cases = {
      {{{"images", (dir / "truncated").string()}}, "truncated: the header promises 18 bytes of data, the file has 14"},
      {{{"images", (dir / "magic").string()}}, "bad magic number"},
      {{{"images", (dir / "floats").string()}}, "is not supported"},
      {{{"images", (dir / "two_labels").string()}}, "images must have 3 dimensions, the file has 1"},
      {{{"images", (dir / "images").string()}, {"labels", (dir / "two_labels").string()}}, "2 labels for 3 images"},
      {{{"images", (dir / "images").string()}, {"labels", (dir / "big_label").string()}, {"class_names", {"a", "b"}}},
       "label 5 has no name in class_names"},
      {{{"images", (dir / "none").string()}}, "the file holds no images"},
  };
  for (const auto& [params, expected] : cases) {
    RecordingSink sink;
    const auto outcome = run("data.idx", params, dir.path(), sink);
    EXPECT_FALSE(outcome.ok);
    EXPECT_EQ(outcome.code, KILN_ERROR_INVALID_ARGUMENT);
    EXPECT_NE(outcome.message.find(expected), std::string::npos) << outcome.message;
  }
}

// Three u32 dimensions can multiply past 2^64: 2^31 x 2^31 x 4 wraps to 0,
// which matched an empty data section and sized a tensor of 2^64 bytes.
TEST(DataIdx, RejectsDimensionsWhoseProductWrapsAround) {
  TempDir dir;
  kiln::test::write_text(dir / "wraps", idx({0x80000000u, 0x80000000u, 4}, {}));
  RecordingSink sink;
  const auto outcome = run("data.idx", {{"images", (dir / "wraps").string()}}, dir.path(), sink);
  EXPECT_FALSE(outcome.ok);
  EXPECT_EQ(outcome.code, KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(outcome.message.find("truncated: the header's dimensions promise more than 2^64 bytes"), std::string::npos)
      << outcome.message;
}

}  // namespace
}  // namespace kiln::data_test
