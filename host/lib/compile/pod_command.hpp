// The `kiln step` command line of a compiled task, shared by the targets:
// each target says where it puts a value, an input or an output, this
// builds the arguments (pod_step.hpp reads them).
#pragma once

#include <kiln/host/compile.hpp>

#include <functional>
#include <string>
#include <vector>

namespace kiln::host::compile_detail {

struct PodPlaces {
  std::function<std::string(const IrValue&)> value;                 // the text of a value
  std::function<std::string()> item;                                // the loop item's text
  std::function<std::string(const std::string&)> input_path;        // where input NAME's directory is
  std::function<std::string(const std::string&)> input_metadata;    // the text of input NAME's metadata
  std::function<std::string(const std::string&)> output_path;       // where output NAME goes
  std::function<std::string(const std::string&)> metadata_path;     // where output NAME's metadata goes
  std::function<std::string(const std::string&)> parameter_path;    // where output parameter NAME goes
};

// "step", "--request-json", REQUEST, then --value/--input/--output… pairs.
std::vector<std::string> pod_arguments(const IrTask& task, const PodPlaces& places);

// The output parameter holding output NAME's metadata (JSON text).
std::string metadata_parameter(const std::string& output);

// Seconds as a duration text both engines read ("0.1s", "30s").
std::string duration_text(double seconds);

}  // namespace kiln::host::compile_detail
