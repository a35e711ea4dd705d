/*
 * kiln plugin ABI, version 1.
 *
 * This header is the whole binary contract between the kiln host and a plugin
 * library. Only C types cross it: no C++ exceptions, no STL types, no
 * ownership that is not written down next to the function that moves it.
 *
 * Rules (see docs/abi.md for how the ABI evolves):
 *  - A plugin library exports exactly one symbol, kiln_plugin_entry.
 *    Everything else is reached through tables of function pointers.
 *  - Every struct starts with `struct_size`, is append-only, and its reader
 *    only touches fields that lie inside the struct_size the writer filled in.
 *  - ABI major versions must be equal. The host accepts plugins built against
 *    an older or equal minor version (a newer host only ever appends).
 *  - Errors are values: a function that can fail returns a KilnError*, NULL on
 *    success. Errors are created by the host (KilnHostApi.error_new).
 *  - Strings are NUL-terminated UTF-8. A `const char*` that a function hands
 *    out stays owned by whoever handed it out, for the lifetime documented on
 *    that function.
 */
#ifndef KILN_PLUGIN_API_H
#define KILN_PLUGIN_API_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KILN_ABI_VERSION_MAJOR 1u
#define KILN_ABI_VERSION_MINOR 3u

#if defined(_WIN32)
#define KILN_PLUGIN_EXPORT __declspec(dllexport)
#else
#define KILN_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

/* The one symbol a plugin library exports (see kiln_plugin_entry below). */
#define KILN_PLUGIN_ENTRY_SYMBOL "kiln_plugin_entry"

/* ------------------------------------------------------------------------ */
/* Opaque handles                                                           */
/* ------------------------------------------------------------------------ */

/* An error. Created by the host (error_new) or returned by a host function.
 * Whoever holds a KilnError* owns it until it either returns it to the host
 * (as the result of a plugin function) or releases it with error_release. */
typedef struct KilnError KilnError;

/* One running step: parameters, artifacts and the event sink of a single
 * component invocation. Owned by the host; valid only during the `run` call
 * it was passed to. */
typedef struct KilnStepContext KilnStepContext;

/* Plugin-owned state of a tuner or a loaded model (see the extension tables). */
typedef struct KilnTuner KilnTuner;
typedef struct KilnModel KilnModel;

/* ------------------------------------------------------------------------ */
/* Enumerations (fixed-width integers on the wire, never C enums)           */
/* ------------------------------------------------------------------------ */

typedef int32_t KilnErrorCode;
#define KILN_ERROR_UNKNOWN 1
#define KILN_ERROR_INVALID_ARGUMENT 2 /* a parameter or input is unusable   */
#define KILN_ERROR_NOT_FOUND 3        /* a named parameter/port is missing  */
#define KILN_ERROR_INTERNAL 4         /* a bug or uncaught exception        */
#define KILN_ERROR_CANCELLED 5        /* the step stopped on cancellation   */
#define KILN_ERROR_IO 6               /* reading or writing files failed    */
#define KILN_ERROR_UNSUPPORTED 7      /* feature or version not supported   */
#define KILN_ERROR_TYPE_MISMATCH 8    /* value exists with another type     */

typedef int32_t KilnLogLevel;
#define KILN_LOG_DEBUG 10
#define KILN_LOG_INFO 20
#define KILN_LOG_WARNING 30
#define KILN_LOG_ERROR 40

/* Tensor element types of the serving runtime table (KServe V2 names). */
typedef int32_t KilnDataType;
#define KILN_DT_BOOL 1
#define KILN_DT_UINT8 2
#define KILN_DT_UINT16 3
#define KILN_DT_UINT32 4
#define KILN_DT_UINT64 5
#define KILN_DT_INT8 6
#define KILN_DT_INT16 7
#define KILN_DT_INT32 8
#define KILN_DT_INT64 9
#define KILN_DT_FP16 10
#define KILN_DT_FP32 11
#define KILN_DT_FP64 12
#define KILN_DT_BYTES 13

/* ------------------------------------------------------------------------ */
/* Host function table: what the host offers a plugin                       */
/* ------------------------------------------------------------------------ */

/*
 * Handed to the plugin's init function. The table and everything it points to
 * are owned by the host and stay valid until the process exits (plugins are
 * never unloaded). Unless a function says otherwise it is thread-safe: a
 * plugin may call it from any thread while the `ctx` it names is valid.
 *
 * Functions that return `const char*` through an out-parameter hand out a
 * pointer owned by the host and valid until the step's `run` returns.
 */
typedef struct KilnHostApi {
  uint32_t struct_size;
  uint32_t abi_major; /* the host's ABI version */
  uint32_t abi_minor;
  uint32_t reserved0;
  const char* host_version; /* kiln's own version text, e.g. "0.1.0"; static */

  /* --- errors ------------------------------------------------------------ */

  /* Creates an error. `message` is copied; NULL is treated as "". Returns a
   * new error owned by the caller. Never returns NULL (on allocation failure
   * it returns a static out-of-memory error that error_release ignores). */
  KilnError* (*error_new)(KilnErrorCode code, const char* message);
  /* Code and message of an error. The message is owned by the error and valid
   * until it is released or handed back to the host. */
  KilnErrorCode (*error_code)(const KilnError* error);
  const char* (*error_message)(const KilnError* error);
  /* Releases an error the caller owns. NULL is a no-op. */
  void (*error_release)(KilnError* error);

  /* --- events: logs, metrics, progress ----------------------------------- */

  /* Writes one structured log line for the step. `message` is copied. */
  void (*log)(KilnStepContext* ctx, KilnLogLevel level, const char* message);
  /* Records metric `name` at training step `step` (use -1 when there is no
   * step). `name` must match [A-Za-z0-9_.:/-]+; value must be finite. */
  KilnError* (*metric)(KilnStepContext* ctx, const char* name, double value, int64_t step);
  /* Reports progress: `fraction` in [0, 1]; `message` may be NULL. */
  KilnError* (*progress)(KilnStepContext* ctx, double fraction, const char* message);
  /* Non-zero once the host asked the step to stop. Cheap: poll it in loops.
   * A step that sees it should return an error with KILN_ERROR_CANCELLED. */
  int32_t (*is_cancelled)(KilnStepContext* ctx);

  /* --- parameters -------------------------------------------------------- */

  /* Typed accessors for the step's resolved parameters (defaults from the
   * manifest already applied). KILN_ERROR_NOT_FOUND when the parameter has no
   * value; KILN_ERROR_TYPE_MISMATCH when it has another type (an int is
   * accepted where a float is asked). */
  KilnError* (*param_string)(KilnStepContext* ctx, const char* name, const char** value_out);
  KilnError* (*param_int)(KilnStepContext* ctx, const char* name, int64_t* value_out);
  KilnError* (*param_float)(KilnStepContext* ctx, const char* name, double* value_out);
  KilnError* (*param_bool)(KilnStepContext* ctx, const char* name, int32_t* value_out);
  /* Any parameter (lists and objects included) as JSON text. */
  KilnError* (*param_json)(KilnStepContext* ctx, const char* name, const char** json_out);

  /* --- artifacts --------------------------------------------------------- */

  /* Directory holding input artifact `name`, read-only for the plugin.
   * KILN_ERROR_NOT_FOUND when the input is optional and not wired;
   * KILN_ERROR_INVALID_ARGUMENT when the manifest declares no such input. */
  KilnError* (*input_path)(KilnStepContext* ctx, const char* name, const char** path_out);
  /* Metadata of input artifact `name` as a JSON object. */
  KilnError* (*input_metadata)(KilnStepContext* ctx, const char* name, const char** json_out);
  /* Empty directory, created by the host, that the plugin fills with output
   * artifact `name`. Only these directories are writable for the step. */
  KilnError* (*output_path)(KilnStepContext* ctx, const char* name, const char** path_out);
  /* Attaches a JSON object of metadata to output artifact `name` (merged
   * over earlier calls). `json` is copied. */
  KilnError* (*output_metadata)(KilnStepContext* ctx, const char* name, const char* json);
  /* Sets output parameter `name` to a JSON value. `json_value` is copied. */
  KilnError* (*output_parameter)(KilnStepContext* ctx, const char* name, const char* json_value);
  /* A private scratch directory for the step, removed after it. */
  KilnError* (*temp_dir)(KilnStepContext* ctx, const char** path_out);

  /* Since ABI 1.2. A directory private to this step of this run that outlives
   * a failed attempt: a retried (or resumed) attempt sees what the earlier one
   * left there, so long work can checkpoint and continue instead of starting
   * over. Removed when the step succeeds. The string lives until the run
   * function returns. KILN_ERROR_UNSUPPORTED when the executor has none. */
  KilnError* (*checkpoint_dir)(KilnStepContext* ctx, const char** path_out);
} KilnHostApi;

/* ------------------------------------------------------------------------ */
/* Extension tables, negotiated like everything else through struct_size    */
/* ------------------------------------------------------------------------ */

/*
 * Tuner: a search algorithm behind a tuning step. The host calls a tuner
 * object from one thread at a time (calls on one KilnTuner* are serialised);
 * different tuner objects may be used concurrently.
 */
typedef struct KilnTunerApi {
  uint32_t struct_size;
  uint32_t reserved0;
  /* Creates a tuner. `config_json` (copied by the plugin if kept) holds the
   * objective, the search space, the algorithm's settings and the seed. On
   * success *tuner_out is owned by the host until `destroy`. `host` is valid
   * for the life of the process: a tuner keeps it to create the errors of its
   * later calls (the C++ SDK's tuner_table<T>() does, per tuner). */
  KilnError* (*create)(const KilnHostApi* host, const char* config_json, KilnTuner** tuner_out);
  /* Asks for up to `max_count` new trials. *json_out receives a JSON array of
   * {"trial": id, "parameters": {...}}; an empty array means the search is
   * exhausted. The text is owned by the tuner, valid until its next call. */
  KilnError* (*suggest)(KilnTuner* tuner, uint32_t max_count, const char** json_out);
  /* Reports trial `trial`'s objective `value` at `step` (epoch). `is_final`
   * is non-zero for the last report; `status` is a JSON string such as
   * "succeeded", "failed" or "early-stopped" for the final one. */
  KilnError* (*observe)(KilnTuner* tuner, int64_t trial, int64_t step, double value, int32_t is_final,
                        const char* status);
  /* Sets *stop_out non-zero when running trial `trial` should stop now. */
  KilnError* (*should_stop)(KilnTuner* tuner, int64_t trial, int32_t* stop_out);
  /* Frees the tuner. Never fails; NULL is a no-op. */
  void (*destroy)(KilnTuner* tuner);

  /* Since ABI 1.3; optional (NULL, or a shorter struct: not offered). For a
   * search with several objectives (config "objectives"), trial `trial`'s
   * value of every objective, `values[i]` for objectives[i] (`count` of
   * them; NaN where the trial gave none), as reported, not negated. The
   * host calls it once per finished trial, just before the final observe,
   * so a sampler learning from several objectives (NSGA-II) sees them all;
   * `values` is the host's, valid during the call. */
  KilnError* (*observe_objectives)(KilnTuner* tuner, int64_t trial, const double* values, uint32_t count);
} KilnTunerApi;

/* A tensor crossing the serving boundary: a dense row-major buffer. The
 * struct and what it points to belong to whoever filled it in (see infer). */
typedef struct KilnTensor {
  uint32_t struct_size;
  KilnDataType datatype;
  const char* name;
  const int64_t* shape;
  uint32_t ndim;
  uint32_t reserved0;
  const void* data;
  uint64_t byte_size;
} KilnTensor;

/*
 * Serving runtime: loads models and runs inference on batches. `infer` may be
 * called concurrently on one model from several threads; `load` and `unload`
 * are never concurrent with anything else on the same model.
 */
typedef struct KilnServingApi {
  uint32_t struct_size;
  uint32_t reserved0;
  /* Loads the model stored in `model_dir` with `config_json` (copied if
   * kept). On success *model_out is owned by the host until `unload`. `host`
   * is valid for the life of the process: a model keeps it to create the
   * errors of metadata and infer, which get no host (the C++ SDK's
   * serving_table<M>() does, per model; no global is needed). */
  KilnError* (*load)(const KilnHostApi* host, const char* model_dir, const char* config_json, KilnModel** model_out);
  /* The model's inputs and outputs (names, datatypes, shapes with -1 for
   * variable dimensions) as JSON; owned by the model, valid until unload. */
  KilnError* (*metadata)(KilnModel* model, const char** json_out);
  /* Runs one batch. `inputs` (host-owned) are valid during the call. The
   * runtime fills `*outputs_out` with `*output_count_out` tensors it owns;
   * they stay valid until the host passes them to release_outputs. */
  KilnError* (*infer)(KilnModel* model, const KilnTensor* inputs, uint32_t input_count, const KilnTensor** outputs_out,
                      uint32_t* output_count_out);
  /* Gives back the outputs of one infer call: `outputs` and `output_count`
   * exactly as infer returned them (so NULL and 0 when it returned none). The
   * host reads none of them afterwards. Never fails. */
  void (*release_outputs)(KilnModel* model, const KilnTensor* outputs, uint32_t output_count);
  /* Frees the model. Never fails; NULL is a no-op. */
  void (*unload)(KilnModel* model);
} KilnServingApi;

/* ------------------------------------------------------------------------ */
/* What a plugin offers the host                                            */
/* ------------------------------------------------------------------------ */

/* Runs the component once. `host` and `ctx` are valid during the call only.
 * `user_data` is the component's own pointer from KilnComponent. The function
 * may be called concurrently for different contexts. Returns NULL on
 * success, or an error (ownership moves to the host). */
typedef KilnError* (*KilnRunFn)(const KilnHostApi* host, KilnStepContext* ctx, void* user_data);

/* See KilnComponent.warm_up. */
typedef KilnError* (*KilnWarmUpFn)(const KilnHostApi* host, void* user_data);

typedef struct KilnComponent {
  uint32_t struct_size;
  uint32_t reserved0;
  /* The component's manifest as JSON text (see docs/abi.md): name, version,
   * kind, description, inputs, outputs, output_parameters, parameters.
   * Owned by the plugin; valid for the life of the process. */
  const char* manifest_json;
  /* Runs a step; may be NULL for components that are only tuners or serving
   * runtimes. */
  KilnRunFn run;
  void* user_data;
  /* Optional extension tables (NULL when not provided); plugin-owned,
   * valid for the life of the process. */
  const KilnTunerApi* tuner;
  const KilnServingApi* serving;
  /* Since ABI 1.1; may be NULL. One-time initialisation that a long-lived
   * process (the step server) runs before it forks steps of this component,
   * so every forked step starts warm: a first LibTorch operation, caches.
   * Called at most once per process, never concurrently with anything else.
   * It must leave no extra threads running (the caller forks afterwards) and
   * must not depend on a step: there is no KilnStepContext. An error is
   * logged and otherwise ignored (steps then simply start cold). */
  KilnWarmUpFn warm_up;
} KilnComponent;

typedef struct KilnPlugin {
  uint32_t struct_size;
  uint32_t component_count;
  /* `component_count` pointers; the array and the components are owned by
   * the plugin and valid for the life of the process. */
  const KilnComponent* const* components;
} KilnPlugin;

/*
 * What kiln_plugin_entry returns. Its first three fields are frozen across
 * every ABI major version, so a host can read the version of any plugin
 * before it calls anything else.
 */
typedef struct KilnPluginEntry {
  uint32_t struct_size;
  uint32_t abi_major; /* the ABI version the plugin was built against */
  uint32_t abi_minor;
  uint32_t reserved0;
  /* Called once by the host after the version check, before any other call.
   * `host` is valid for the life of the process. On success *plugin_out
   * points at a plugin-owned description valid for the life of the process.
   * On failure returns an error created with host->error_new. Not called
   * concurrently. */
  KilnError* (*init)(const KilnHostApi* host, const KilnPlugin** plugin_out);
} KilnPluginEntry;

/* The exported entry point. Must not fail, allocate or have side effects:
 * it returns a pointer to a static struct. */
typedef const KilnPluginEntry* (*KilnPluginEntryFn)(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* KILN_PLUGIN_API_H */
