// The whole of `kiln compile`: plan → IR → target → YAML text (and the notes).
#include <kiln/host/compile.hpp>
#include <yaml-cpp/yaml.h>

namespace kiln::host {
namespace {

// Every string double-quoted: "2", "true" and "null" stay strings for the
// engines' own YAML readers.
void emit(YAML::Emitter& out, const Json& value) {
  switch (value.type()) {
    case Json::value_t::object:
      out << YAML::BeginMap;
      for (const auto& [key, item] : value.items()) {
        out << YAML::Key << key << YAML::Value;
        emit(out, item);
      }
      out << YAML::EndMap;
      return;
    case Json::value_t::array:
      out << YAML::BeginSeq;
      for (const auto& item : value) emit(out, item);
      out << YAML::EndSeq;
      return;
    case Json::value_t::string:
      out << YAML::DoubleQuoted << value.get<std::string>();
      return;
    case Json::value_t::boolean:
      out << value.get<bool>();
      return;
    case Json::value_t::number_integer:
      out << value.get<int64_t>();
      return;
    case Json::value_t::number_unsigned:
      out << value.get<uint64_t>();
      return;
    case Json::value_t::number_float:
      out << value.dump();
      return;
    default:
      out << YAML::Null;
  }
}

}  // namespace

std::string to_yaml_documents(const std::vector<Json>& documents) {
  YAML::Emitter out;
  out.SetIndent(2);
  for (const auto& d : documents) {
    out << YAML::BeginDoc;
    emit(out, d);
  }
  return std::string(out.c_str()) + "\n";
}

CompiledPipeline compile_pipeline(const Plan& plan, const CompileOptions& options) {
  PipelineIr ir = build_pipeline_ir(plan, options);
  std::string yaml = options.target == CompileTarget::Argo ? to_yaml_documents({emit_argo_workflow(ir)})
                                                           : to_yaml_documents(emit_kfp_pipeline(ir));
  return {std::move(yaml), std::move(ir.notes)};
}

}  // namespace kiln::host
