// The shared ML formats: safetensors round trips and rejects damaged files;
// datasets are validated against their schema on load and save.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "dataset.hpp"
#include "safetensors.hpp"
#include "test_support.hpp"

namespace ml = kiln::ml;
using kiln::test::TempDir;

namespace {

ml::Dataset tiny_table() {
  ml::Dataset d;
  d.schema.feature_shape = {2};
  d.schema.columns = {{"height", ml::ColumnKind::Numeric, "float64", {}},
                      {"colour", ml::ColumnKind::Categorical, "string", {"red", "blue"}}};
  d.schema.label = ml::LabelInfo{"kind", ml::Task::Classification, {"a", "b", "c"}};
  d.features = ml::Tensor::from_float({1.5f, 0, 2.5f, 1, NAN, 0}, {3, 2});
  d.labels = ml::Tensor(ml::DType::I64, {3});
  const int64_t labels[] = {0, 2, 1};
  std::memcpy(d.labels->bytes.data(), labels, sizeof labels);
  return d;
}

void expect_error(const std::function<void()>& action, const std::string& fragment) {
  try {
    action();
    FAIL() << "expected an error containing: " << fragment;
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(Safetensors, RoundTripsTensorsAndMetadata) {
  TempDir dir;
  ml::TensorFile file;
  file.tensors.emplace("w", ml::Tensor::from_float({1, 2, 3, 4, 5, 6}, {2, 3}));
  ml::Tensor bytes(ml::DType::U8, {4});
  for (int i = 0; i < 4; ++i) bytes.bytes[static_cast<size_t>(i)] = std::byte(i * 10);
  file.tensors.emplace("b", bytes);
  file.metadata["note"] = "hello";
  ml::write_safetensors(dir / "t.safetensors", file);

  const auto back = ml::read_safetensors(dir / "t.safetensors");
  ASSERT_EQ(back.tensors.size(), 2u);
  EXPECT_EQ(back.tensors.at("w").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(back.tensors.at("w").to_float(), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(back.tensors.at("b").to_float(), (std::vector<float>{0, 10, 20, 30}));
  EXPECT_EQ(back.metadata.at("note"), "hello");
}

TEST(Safetensors, HeaderIsLittleEndianLengthThenAlignedJson) {
  TempDir dir;
  ml::TensorFile file;
  file.tensors.emplace("x", ml::Tensor::from_float({7}, {1}));
  ml::write_safetensors(dir / "t.safetensors", file);
  const std::string raw = kiln::test::read_text(dir / "t.safetensors");
  uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | static_cast<unsigned char>(raw[static_cast<size_t>(i)]);
  EXPECT_EQ(length % 8, 0u);
  EXPECT_EQ(raw.substr(8, 1), "{");
  EXPECT_EQ(raw.size(), 8 + length + 4);  // one F32 after the header
}

TEST(Safetensors, RejectsTruncatedAndInconsistentFiles) {
  TempDir dir;
  ml::TensorFile file;
  file.tensors.emplace("x", ml::Tensor::from_float({1, 2, 3, 4}, {4}));
  ml::write_safetensors(dir / "t.safetensors", file);
  const std::string raw = kiln::test::read_text(dir / "t.safetensors");

  kiln::test::write_text(dir / "short.safetensors", raw.substr(0, raw.size() - 3));
  expect_error([&] { ml::read_safetensors(dir / "short.safetensors"); }, "runs past the end");
  kiln::test::write_text(dir / "tiny.safetensors", "abc");
  expect_error([&] { ml::read_safetensors(dir / "tiny.safetensors"); }, "tiny.safetensors");
  kiln::test::write_text(dir / "huge.safetensors", std::string("\xff\xff\xff\xff\xff\xff\xff\x7f", 8) + "{}");
  expect_error([&] { ml::read_safetensors(dir / "huge.safetensors"); }, "header length");

  std::string bad_shape = raw;
  const auto at = bad_shape.find("[4]");
  ASSERT_NE(at, std::string::npos);
  bad_shape.replace(at, 3, "[5]");
  kiln::test::write_text(dir / "shape.safetensors", bad_shape);
  expect_error([&] { ml::read_safetensors(dir / "shape.safetensors"); }, "its shape needs");
  expect_error([&] { ml::read_safetensors(dir / "missing.safetensors"); }, "cannot read");
}

// A safetensors file's bytes: the header's length, the header, the data.
std::string safetensors_bytes(const std::string& header, const std::string& data) {
  std::string out;
  for (int i = 0; i < 8; ++i) out += static_cast<char>((header.size() >> (8 * i)) & 0xff);
  return out + header + data;
}

void expect_invalid(const std::string& bytes, const std::string& fragment) {
  try {
    ml::parse_safetensors(bytes, "f.safetensors");
    ADD_FAILURE() << "accepted; expected an error containing: " << fragment;
  } catch (const std::runtime_error& e) {  // what the reader promises: no other exception type
    EXPECT_NE(std::string(e.what()).find("f.safetensors: not a valid safetensors file"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

// Found by fuzz_safetensors and while fixing it (issue 17).
TEST(Safetensors, RejectsHostileHeaders) {
  // A number past double's range: nlohmann's out_of_range escaped as another exception type.
  expect_invalid(safetensors_bytes(R"({"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1e400]}})", "a"),
                 "header is not JSON");
  expect_invalid(safetensors_bytes(R"({"x":{"dtype":"U8","shape":[1],"data_offsets":"0-1"}})", "a"),
                 "tensor 'x'");
  // data_offsets near 2^64: data start + end wrapped around, passed the bounds check and was copied from.
  expect_invalid(
      safetensors_bytes(R"({"x":{"dtype":"U8","shape":[4],"data_offsets":[18446744073709551611,18446744073709551615]}})",
                        "abcd"),
      "runs past the end of the file");
  // A shape whose product passes 2^63 (signed overflow in Tensor::numel) and wrapped to 0 bytes.
  expect_invalid(safetensors_bytes(R"({"x":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", ""),
                 "shape too large");
  expect_invalid(safetensors_bytes(R"({"x":{"dtype":"F64","shape":[4294967296],"data_offsets":[0,0]}})", ""),
                 "needs more bytes than the file holds");
  // Fractions and numbers past the type's range: converted by a plain cast
  // (undefined behaviour: the fuzzer's -9.2e20 became an unsigned offset).
  expect_invalid(safetensors_bytes(R"({"x":{"dtype":"U8","shape":[1],"data_offsets":[-9.2e20,1]}})", "a"),
                 "data_offsets must hold whole numbers in range, not -9.2e+20");
  expect_invalid(safetensors_bytes(R"({"x":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}})", "a"),
                 "data_offsets must hold whole numbers");
  expect_invalid(safetensors_bytes(R"({"x":{"dtype":"U8","shape":[1.5],"data_offsets":[0,1]}})", "a"),
                 "shape must hold whole numbers");
  expect_invalid(safetensors_bytes(R"({"x":{"dtype":"U8","shape":[9223372036854775808],"data_offsets":[0,1]}})", "a"),
                 "shape must hold whole numbers");
}

TEST(Dataset, RoundTripsWithSchema) {
  TempDir dir;
  ml::save_dataset(dir / "ds", tiny_table());
  const auto back = ml::load_dataset(dir / "ds");
  EXPECT_EQ(back.rows(), 3);
  EXPECT_TRUE(back.is_table());
  EXPECT_EQ(back.schema.columns[1].categories, (std::vector<std::string>{"red", "blue"}));
  EXPECT_EQ(back.class_labels(), (std::vector<int64_t>{0, 2, 1}));
  EXPECT_TRUE(std::isnan(back.features.to_float()[4]));
  EXPECT_EQ(back.schema.label->classes.size(), 3u);
}

TEST(Dataset, SubsetKeepsFeaturesAndLabelsTogether) {
  const auto d = tiny_table().subset({2, 0});
  EXPECT_EQ(d.rows(), 2);
  EXPECT_EQ(d.class_labels(), (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(d.features.to_float()[2], 1.5f);
}

TEST(Dataset, RejectsDataThatContradictsTheSchema) {
  TempDir dir;
  auto out_of_range = tiny_table();
  out_of_range.labels->data<int64_t>()[1] = 3;
  expect_error([&] { ml::save_dataset(dir / "a", out_of_range); }, "outside the 3 classes");

  auto wrong_columns = tiny_table();
  wrong_columns.schema.columns.pop_back();
  expect_error([&] { ml::save_dataset(dir / "b", wrong_columns); }, "feature_shape");

  ml::save_dataset(dir / "ds", tiny_table());
  kiln::test::write_text(dir / "ds/schema.json", "{\"format\": \"something-else\"}");
  expect_error([&] { ml::load_dataset(dir / "ds"); }, "schema.json");
  expect_error([&] { ml::load_dataset(dir / "nowhere"); }, "not a dataset directory");
}
