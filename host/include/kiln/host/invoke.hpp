// Running one component in this process: resolve its parameters against the
// manifest, build the step context, call the plugin, collect the outcome.
#pragma once

#include <kiln/host/plugin_library.hpp>
#include <kiln/host/step_context.hpp>

#include <atomic>
#include <string>
#include <vector>

namespace kiln::host {

// Applies manifest defaults to `given` (a JSON object). Returns every problem
// (unknown, missing, wrongly typed or out-of-bounds parameter) in `problems`.
Json resolve_parameters(const ComponentManifest& manifest, const Json& given, std::vector<std::string>& problems);

struct StepOutcome {
  bool ok = false;
  KilnErrorCode code = 0;
  std::string message;
};

// Calls the component's run function. Never throws; a plugin error or a host
// problem ends up in the outcome. `cancelled` may be set from another thread.
StepOutcome invoke_component(const LoadedComponent& component, StepInvocation invocation, StepEventSink& sink,
                             const std::atomic<bool>& cancelled);

}  // namespace kiln::host
