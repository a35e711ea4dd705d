// Freezes the binary layout of ABI v1. A failure here means a change broke
// plugins already built: append fields at the end instead (docs/abi.md).
#include <gtest/gtest.h>
#include <kiln/plugin_api.h>

#include <cstddef>

#define KILN_FROZEN(type, field, offset) \
  static_assert(offsetof(type, field) == (offset), #type "." #field " moved: the ABI v1 layout is frozen")

static_assert(KILN_ABI_VERSION_MAJOR == 1, "this test freezes ABI major version 1");

// The first three fields of the entry struct are frozen across every major.
KILN_FROZEN(KilnPluginEntry, struct_size, 0);
KILN_FROZEN(KilnPluginEntry, abi_major, 4);
KILN_FROZEN(KilnPluginEntry, abi_minor, 8);
KILN_FROZEN(KilnPluginEntry, reserved0, 12);
KILN_FROZEN(KilnPluginEntry, init, 16);
static_assert(sizeof(KilnPluginEntry) == 24);

KILN_FROZEN(KilnPlugin, struct_size, 0);
KILN_FROZEN(KilnPlugin, component_count, 4);
KILN_FROZEN(KilnPlugin, components, 8);
static_assert(sizeof(KilnPlugin) == 16);

KILN_FROZEN(KilnComponent, struct_size, 0);
KILN_FROZEN(KilnComponent, manifest_json, 8);
KILN_FROZEN(KilnComponent, run, 16);
KILN_FROZEN(KilnComponent, user_data, 24);
KILN_FROZEN(KilnComponent, tuner, 32);
KILN_FROZEN(KilnComponent, serving, 40);
KILN_FROZEN(KilnComponent, warm_up, 48);  // appended in ABI 1.1
static_assert(sizeof(KilnComponent) == 56);

KILN_FROZEN(KilnHostApi, struct_size, 0);
KILN_FROZEN(KilnHostApi, abi_major, 4);
KILN_FROZEN(KilnHostApi, abi_minor, 8);
KILN_FROZEN(KilnHostApi, host_version, 16);
KILN_FROZEN(KilnHostApi, error_new, 24);
KILN_FROZEN(KilnHostApi, error_code, 32);
KILN_FROZEN(KilnHostApi, error_message, 40);
KILN_FROZEN(KilnHostApi, error_release, 48);
KILN_FROZEN(KilnHostApi, log, 56);
KILN_FROZEN(KilnHostApi, metric, 64);
KILN_FROZEN(KilnHostApi, progress, 72);
KILN_FROZEN(KilnHostApi, is_cancelled, 80);
KILN_FROZEN(KilnHostApi, param_string, 88);
KILN_FROZEN(KilnHostApi, param_int, 96);
KILN_FROZEN(KilnHostApi, param_float, 104);
KILN_FROZEN(KilnHostApi, param_bool, 112);
KILN_FROZEN(KilnHostApi, param_json, 120);
KILN_FROZEN(KilnHostApi, input_path, 128);
KILN_FROZEN(KilnHostApi, input_metadata, 136);
KILN_FROZEN(KilnHostApi, output_path, 144);
KILN_FROZEN(KilnHostApi, output_metadata, 152);
KILN_FROZEN(KilnHostApi, output_parameter, 160);
KILN_FROZEN(KilnHostApi, temp_dir, 168);
KILN_FROZEN(KilnHostApi, checkpoint_dir, 176);
static_assert(sizeof(KilnHostApi) == 184);

KILN_FROZEN(KilnTunerApi, struct_size, 0);
KILN_FROZEN(KilnTunerApi, create, 8);
KILN_FROZEN(KilnTunerApi, suggest, 16);
KILN_FROZEN(KilnTunerApi, observe, 24);
KILN_FROZEN(KilnTunerApi, should_stop, 32);
KILN_FROZEN(KilnTunerApi, destroy, 40);
KILN_FROZEN(KilnTunerApi, observe_objectives, 48);  // 1.3
static_assert(sizeof(KilnTunerApi) == 56);

KILN_FROZEN(KilnTensor, struct_size, 0);
KILN_FROZEN(KilnTensor, datatype, 4);
KILN_FROZEN(KilnTensor, name, 8);
KILN_FROZEN(KilnTensor, shape, 16);
KILN_FROZEN(KilnTensor, ndim, 24);
KILN_FROZEN(KilnTensor, data, 32);
KILN_FROZEN(KilnTensor, byte_size, 40);
static_assert(sizeof(KilnTensor) == 48);

KILN_FROZEN(KilnServingApi, struct_size, 0);
KILN_FROZEN(KilnServingApi, load, 8);
KILN_FROZEN(KilnServingApi, metadata, 16);
KILN_FROZEN(KilnServingApi, infer, 24);
KILN_FROZEN(KilnServingApi, release_outputs, 32);
KILN_FROZEN(KilnServingApi, unload, 40);
static_assert(sizeof(KilnServingApi) == 48);

// The enumerations travel as fixed-width integers with frozen values.
static_assert(sizeof(KilnErrorCode) == 4 && sizeof(KilnLogLevel) == 4 && sizeof(KilnDataType) == 4);
static_assert(KILN_ERROR_UNKNOWN == 1 && KILN_ERROR_TYPE_MISMATCH == 8);
static_assert(KILN_LOG_DEBUG == 10 && KILN_LOG_ERROR == 40);
static_assert(KILN_DT_BOOL == 1 && KILN_DT_BYTES == 13);

TEST(AbiLayout, HeaderCompilesAsC11AndCpp) {
  // The static_asserts above are the test; this records the sizes at run time too.
  EXPECT_EQ(sizeof(KilnHostApi), 184u);
  EXPECT_EQ(sizeof(KilnComponent), 56u);
  EXPECT_STREQ(KILN_PLUGIN_ENTRY_SYMBOL, "kiln_plugin_entry");
}
