// Manifests: what the SDK writes, the host reads back unchanged; what breaks
// the rules is rejected with the field named.
#include <gtest/gtest.h>

#include <cmath>
#include <kiln/host/manifest.hpp>
#include <kiln/sdk.hpp>

using kiln::host::Json;
using kiln::host::ManifestError;
using kiln::host::parse_manifest;

namespace {

kiln::Manifest full_manifest() {
  return kiln::Manifest("train.demo", "2.1.0-rc.1", kiln::Kind::Train)
      .description("A component using every manifest feature: \"quotes\", tabs\t and \\ too")
      .param(kiln::Param::Float("learning_rate").default_value(0.01).min(1e-6).max(1.0).description("step size"))
      .param(kiln::Param::Int("epochs").default_value(10).min(1).max(1000))
      .param(kiln::Param::String("optimizer").default_value("adam").choices({"sgd", "adam", "adamw"}))
      .param(kiln::Param::Bool("shuffle").default_value(true))
      .param(kiln::Param::List("hidden").default_json("[64, 32]"))
      .param(kiln::Param::String("run_name").description("required: no default"))
      .input(kiln::Port("train", "Dataset").description("training split"))
      .input(kiln::Port("validation", "Dataset").optional())
      .output(kiln::Port("model", "Model"))
      .output_parameter(kiln::Port("accuracy", "float"));
}

Json parsed(const std::string& text) {
  return Json::parse(text);
}

std::string error_of(const std::string& json) {
  try {
    parse_manifest(json);
  } catch (const ManifestError& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST(Manifest, SdkManifestRoundTripsThroughTheHost) {
  const std::string sdk_json = full_manifest().to_json();
  const auto manifest = parse_manifest(sdk_json);
  EXPECT_EQ(manifest.to_json(), parsed(sdk_json));
  EXPECT_EQ(manifest.name, "train.demo");
  EXPECT_EQ(manifest.version.str(), "2.1.0-rc.1");
  EXPECT_EQ(manifest.kind, "train");
  ASSERT_EQ(manifest.parameters.size(), 6u);
  EXPECT_EQ(manifest.parameters[0].type, kiln::host::ValueType::Float);
  EXPECT_DOUBLE_EQ(*manifest.parameters[0].min, 1e-6);
  EXPECT_EQ(*manifest.parameters[1].default_value, Json(10));
  EXPECT_EQ(manifest.parameters[2].choices, (std::vector<std::string>{"sgd", "adam", "adamw"}));
  EXPECT_EQ(*manifest.parameters[4].default_value, parsed("[64, 32]"));
  EXPECT_TRUE(manifest.parameters[5].required());
  EXPECT_TRUE(manifest.find_input("validation")->optional);
  EXPECT_FALSE(manifest.find_input("train")->optional);
  EXPECT_EQ(manifest.find_output("model")->type, "Model");
  EXPECT_EQ(manifest.find_output_parameter("accuracy")->type, "float");
  EXPECT_NE(manifest.description.find("\"quotes\""), std::string::npos);
}

TEST(Manifest, EveryKindRoundTrips) {
  for (const auto kind : {kiln::Kind::Data, kiln::Kind::Tune, kiln::Kind::Train, kiln::Kind::Evaluate,
                          kiln::Kind::Serve, kiln::Kind::Generic}) {
    const auto json = kiln::Manifest("x.y", "1.0.0", kind).to_json();
    EXPECT_EQ(parse_manifest(json).kind, kiln::kind_name(kind));
  }
}

TEST(Manifest, RejectsBrokenManifestsNamingTheField) {
  const std::string head = R"({"name":"a.b","version":"1.0.0","kind":"generic",)";
  EXPECT_NE(error_of("{not json").find("not valid JSON"), std::string::npos);
  EXPECT_NE(error_of(R"({"version":"1.0.0"})").find("missing field 'name'"), std::string::npos);
  EXPECT_NE(error_of(R"({"name":"A B","version":"1.0.0","kind":"generic"})").find(".name"), std::string::npos);
  EXPECT_NE(error_of(R"({"name":"a.b","version":"1.0","kind":"generic"})").find("not a semantic version"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"name":"a.b","version":"1.0.0","kind":"magic"})").find(".kind"), std::string::npos);
  EXPECT_NE(error_of(head + R"("colour":"red"})").find("unknown field 'colour'"), std::string::npos);
  EXPECT_NE(error_of(head + R"("parameters":[{"name":"n","type":"int","default":"ten"}]})")
                .find("parameters[0].default: expected int"),
            std::string::npos);
  EXPECT_NE(error_of(head + R"("parameters":[{"name":"n","type":"int","default":50,"max":10}]})")
                .find("above the maximum 10"),
            std::string::npos);
  EXPECT_NE(error_of(head + R"("parameters":[{"name":"n","type":"complex"}]})").find("parameters[0].type"),
            std::string::npos);
  EXPECT_NE(error_of(head + R"("parameters":[{"name":"n","type":"int"},{"name":"n","type":"int"}]})")
                .find("duplicate name 'n'"),
            std::string::npos);
  EXPECT_NE(error_of(head + R"("inputs":[{"name":"x","type":"Data set"}]})").find("inputs[0].type"), std::string::npos);
  EXPECT_NE(
      error_of(head + R"("output_parameters":[{"name":"x","type":"Dataset"}]})").find("output_parameters[0].type"),
      std::string::npos);
  EXPECT_NE(error_of(head + R"("parameters":[{"name":"s","type":"string","min":1}]})").find("bounds"),
            std::string::npos);
}

TEST(Manifest, ChecksParameterValues) {
  const auto m = parse_manifest(full_manifest().to_json());
  const auto& lr = *m.find_parameter("learning_rate");
  EXPECT_FALSE(check_parameter_value(lr, Json(0.5)));
  EXPECT_FALSE(check_parameter_value(lr, Json(1)));  // an int is a valid float
  EXPECT_TRUE(check_parameter_value(lr, Json(2.0)));
  EXPECT_TRUE(check_parameter_value(lr, Json("fast")));
  const auto& epochs = *m.find_parameter("epochs");
  EXPECT_TRUE(check_parameter_value(epochs, Json(2.5)));
  EXPECT_EQ(*check_parameter_value(epochs, Json(0)), "0 is below the minimum 1");
  EXPECT_EQ(*check_parameter_value(*m.find_parameter("optimizer"), Json("rmsprop")),
            "\"rmsprop\" is not one of: sgd, adam, adamw");
}

// Found by fuzz_spec: a bound past int64's range (min: 2e22) was converted to
// int64 to ask whether it is integral, which is undefined (UBSan stops there).
TEST(Manifest, BoundsPastTheIntegerRangeStayFloats) {
  using kiln::host::bound_json;
  EXPECT_EQ(bound_json(3.0), Json(3));
  EXPECT_TRUE(bound_json(3.0).is_number_integer());
  EXPECT_EQ(bound_json(-7.0), Json(-7));
  EXPECT_TRUE(bound_json(2.5).is_number_float());
  for (const double big : {2e22, -2e22, 9.3e18, -9.3e18, 1e300}) {
    const Json bound = bound_json(big);
    EXPECT_TRUE(bound.is_number_float()) << big;
    EXPECT_EQ(bound.get<double>(), big);
  }
  EXPECT_TRUE(bound_json(std::nan("")).is_number_float() || bound_json(std::nan("")).is_null());
}
