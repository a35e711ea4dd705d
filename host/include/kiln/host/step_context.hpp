// The host side of one component invocation: what the ABI's KilnStepContext
// is, the host function table that reads and writes it, and the sink that
// receives the step's events.
#pragma once

#include <kiln/plugin_api.h>
#include <kiln/host/json.hpp>
#include <kiln/host/manifest.hpp>

#include <atomic>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace kiln::host {

// Receives a step's events as they happen, possibly from several threads.
class StepEventSink {
 public:
  virtual ~StepEventSink() = default;
  virtual void on_log(KilnLogLevel level, const std::string& message) = 0;
  virtual void on_metric(const std::string& name, double value, int64_t step) = 0;
  virtual void on_progress(double fraction, const std::string& message) = 0;
  virtual void on_output_parameter(const std::string& name, const Json& value) = 0;
  virtual void on_output_metadata(const std::string& name, const Json& metadata) = 0;
};

struct InputArtifact {
  // A constructor (not an aggregate), so {path, metadata} keeps compiling.
  InputArtifact(std::filesystem::path p = {}, Json m = Json::object(), std::string d = {},
                std::vector<std::string> i = {})
      : path(std::move(p)), metadata(std::move(m)), digest(std::move(d)), items(std::move(i)) {}
  std::filesystem::path path;
  Json metadata = Json::object();
  // Content digest when the artifact is in the store (see artifact_store.hpp);
  // a loop's collected output lists its items' digests in `items` instead.
  std::string digest;
  std::vector<std::string> items;
};

// Everything a component needs for one run, resolved by the caller.
struct StepInvocation {
  Json parameters = Json::object();  // resolved, defaults applied
  std::map<std::string, InputArtifact> inputs;
  std::filesystem::path output_dir;  // output `x` lives in output_dir / x
  std::filesystem::path temp_dir;
  std::filesystem::path checkpoint_dir;  // kept across attempts of the step
};

// The host function table of this kiln build. Static; valid forever.
const KilnHostApi* host_api();

std::string log_level_name(KilnLogLevel level);

}  // namespace kiln::host

// The opaque context of the ABI, defined by the host.
struct KilnStepContext {
  KilnStepContext(const kiln::host::ComponentManifest& manifest, kiln::host::StepInvocation invocation,
                  kiln::host::StepEventSink& sink, const std::atomic<bool>& cancelled)
      : manifest(manifest), invocation(std::move(invocation)), sink(sink), cancelled(cancelled) {}

  // Keeps `text` alive until the step ends and returns a stable pointer.
  const char* intern(std::string text);

  const kiln::host::ComponentManifest& manifest;
  const kiln::host::StepInvocation invocation;
  kiln::host::StepEventSink& sink;
  const std::atomic<bool>& cancelled;  // set by whoever stops the step
  std::mutex mutex;                    // guards `strings` and `output_metadata`
  std::deque<std::string> strings;
  std::map<std::string, kiln::host::Json> output_metadata;
};
