// The `kiln step --request-json …` arguments of a compiled task.
#include "pod_command.hpp"

#include <cmath>
#include <cstdio>

namespace kiln::host::compile_detail {

std::string metadata_parameter(const std::string& output) {
  return "kiln-metadata-" + output;
}

std::string duration_text(double seconds) {
  char text[64];
  if (std::floor(seconds) == seconds)
    std::snprintf(text, sizeof text, "%.0fs", seconds);
  else
    std::snprintf(text, sizeof text, "%.0fms", std::round(seconds * 1000));
  return text;
}

std::vector<std::string> pod_arguments(const IrTask& task, const PodPlaces& places) {
  std::vector<std::string> args{"step", "--request-json", pod_request_argument(task.request)};
  const auto pair = [&](const char* flag, const std::string& name, const std::string& value) {
    args.push_back(flag);
    args.push_back(name + "=" + value);
  };
  for (const auto& v : task.values) pair("--value", v.ref.text(), places.value(v));
  if (task.loop) pair("--value", "item", places.item());
  for (const auto& in : task.inputs) {
    pair("--input", in.name, places.input_path(in.name));
    pair("--input-metadata", in.name, places.input_metadata(in.name));
  }
  for (const auto& out : task.outputs) {
    pair("--output", out, places.output_path(out));
    pair("--output-metadata", out, places.metadata_path(out));
  }
  for (const auto& p : task.output_parameters) pair("--output-parameter", p, places.parameter_path(p));
  return args;
}

}  // namespace kiln::host::compile_detail
