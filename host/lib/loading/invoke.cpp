#include <kiln/host/error.hpp>
#include <kiln/host/invoke.hpp>

namespace kiln::host {

Json resolve_parameters(const ComponentManifest& manifest, const Json& given, std::vector<std::string>& problems) {
  Json resolved = Json::object();
  if (!given.is_object()) {
    problems.push_back("parameters must be a mapping");
    return resolved;
  }
  for (const auto& item : given.items())
    if (manifest.find_parameter(item.key()) == nullptr)
      problems.push_back("component '" + manifest.name + "' has no parameter '" + item.key() + "'");
  for (const auto& spec : manifest.parameters) {
    const auto it = given.find(spec.name);
    if (it == given.end()) {
      if (spec.default_value)
        resolved[spec.name] = *spec.default_value;
      else
        problems.push_back("missing required parameter '" + spec.name + "' of component '" + manifest.name + "'");
      continue;
    }
    if (const auto problem = check_parameter_value(spec, *it))
      problems.push_back("parameter '" + spec.name + "': " + *problem);
    resolved[spec.name] = *it;
  }
  return resolved;
}

StepOutcome invoke_component(const LoadedComponent& component, StepInvocation invocation, StepEventSink& sink,
                             const std::atomic<bool>& cancelled) {
  StepOutcome outcome;
  if (component.component->run == nullptr) {
    outcome.code = KILN_ERROR_UNSUPPORTED;
    outcome.message = "component '" + component.manifest.name + "' cannot run as a step";
    return outcome;
  }
  try {
    KilnStepContext context(component.manifest, std::move(invocation), sink, cancelled);
    const ErrorPtr error(component.component->run(host_api(), &context, component.component->user_data));
    if (error) {
      outcome.code = error->code;
      outcome.message = error->message;
      return outcome;
    }
    outcome.ok = true;
  } catch (const std::exception& e) {  // a C plugin cannot throw; a broken C++ one might
    outcome.code = KILN_ERROR_INTERNAL;
    outcome.message = std::string("exception escaped the plugin: ") + e.what();
  } catch (...) {
    outcome.code = KILN_ERROR_INTERNAL;
    outcome.message = "exception of unknown type escaped the plugin";
  }
  return outcome;
}

}  // namespace kiln::host
