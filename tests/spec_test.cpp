// Pipeline spec parsing and validation: every error class, with its
// message and file:line:col position.
#include <gtest/gtest.h>
#include <kiln/host/spec.hpp>

TEST(Spec, ParsesAMinimalPipeline) {
  const auto spec = kiln::host::parse_pipeline_text(
      "apiVersion: kiln/v1\nkind: Pipeline\nmetadata: {name: tiny}\nsteps:\n  - name: a\n    component: util.noop\n",
      "tiny.yaml");
  EXPECT_EQ(spec.name, "tiny");
  ASSERT_EQ(spec.steps.size(), 1u);
  EXPECT_EQ(spec.steps[0].component, "util.noop");
  EXPECT_EQ(spec.steps[0].pos.line, 5);
}
