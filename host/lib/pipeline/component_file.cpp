// Component files (kind: Component): YAML → ComponentFile, every problem at
// file:line:col. Parameters follow the manifests' rules (YamlReader::read_parameter),
// ports and metadata are checked by the manifest parser itself.
#include <kiln/host/component_file.hpp>
#include <kiln/host/container_options.hpp>
#include <kiln/host/files.hpp>
#include <kiln/host/placeholders.hpp>
#include <kiln/host/suggest.hpp>

#include "yaml_reader.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>

namespace kiln::host {
namespace fs = std::filesystem;

namespace {

constexpr const char* kDigestPrefix = "kiln-component-v1\n";

// The message of a ManifestError about a one-entry manifest, without the
// manifest's own path ("manifest of 'x'.inputs[0].type: ..." → "type: ...").
std::string entry_message(const std::string& message, const std::string& marker) {
  const auto at = message.find(marker);
  if (at == std::string::npos) return message;
  std::string rest = message.substr(at + marker.size());
  if (!rest.empty() && rest[0] == '.') rest.erase(0, 1);
  return rest;
}

class ComponentReader : private YamlReader {
 public:
  explicit ComponentReader(std::vector<Diagnostic>& diagnostics) : YamlReader(diagnostics) {}

  ComponentFile parse(const YAML::Node& root, const fs::path& path) {
    const std::string file = path.string();
    ComponentFile component;
    component.path = fs::absolute(path).lexically_normal();
    dir_ = component.path.parent_path();
    if (!expect_map(root, file, "the component file")) return component;
    check_keys(root, file,
               {"apiVersion", "kind", "metadata", "parameters", "inputs", "outputs", "output_parameters",
                "implementation"},
               "component file");
    check_header(root, file, "Component");
    ComponentManifest& m = component.manifest;
    m.kind = "generic";
    if (const auto meta = root["metadata"]; !meta)
      error(root, file, "missing 'metadata': a component needs a name and a version");
    else
      read_metadata(meta, file, m);
    if (const auto p = root["parameters"]; p && expect_map(p, file, "'parameters'"))
      for (const auto& item : p)
        if (auto param = read_parameter(item.first, item.second, file)) m.parameters.push_back(std::move(*param));
    m.inputs = read_ports(root["inputs"], file, "inputs");
    m.outputs = read_ports(root["outputs"], file, "outputs");
    m.output_parameters = read_ports(root["output_parameters"], file, "output_parameters");
    if (const auto impl = root["implementation"]; !impl)
      error(root, file, "missing 'implementation': the command that runs, as 'command: [PROGRAM, ARG, ...]'");
    else
      read_implementation(impl, file, m, component.implementation);
    return component;
  }

 private:
  void read_metadata(const YAML::Node& node, const std::string& file, ComponentManifest& m) {
    if (!expect_map(node, file, "'metadata'")) return;
    check_keys(node, file, {"name", "version", "kind", "description"}, "metadata");
    if (const auto n = node["name"]) {
      m.name = scalar(n, file, "metadata.name").value_or("");
      if (!is_component_name(m.name))
        error(n, file, "'metadata.name' must be lower-case dotted words such as 'acme.count-lines', not '" + m.name + "'");
    } else {
      error(node, file, "missing 'metadata.name'");
    }
    if (const auto v = node["version"]) {
      const auto text = scalar(v, file, "metadata.version").value_or("");
      if (const auto version = Version::parse(text))
        m.version = *version;
      else
        error(v, file, "'metadata.version' '" + text + "' is not a semantic version (MAJOR.MINOR.PATCH)");
    } else {
      error(node, file, "missing 'metadata.version' (such as 1.0.0)");
    }
    if (const auto k = node["kind"]) {
      m.kind = scalar(k, file, "metadata.kind").value_or("generic");
      const auto& kinds = component_kinds();
      if (std::find(kinds.begin(), kinds.end(), m.kind) == kinds.end())
        error(k, file, "'metadata.kind' must be one of data, tune, train, evaluate, serve, generic" +
                           did_you_mean(m.kind, kinds));
    }
    if (const auto d = node["description"]) m.description = scalar(d, file, "metadata.description").value_or("");
  }

  // `NAME: {type, description, optional}` entries, checked one by one by the
  // manifest parser (its rules for artifact and value types).
  std::vector<PortSpec> read_ports(const YAML::Node& node, const std::string& file, const std::string& section) {
    std::vector<PortSpec> ports;
    if (!node || !expect_map(node, file, "'" + section + "'")) return ports;
    for (const auto& item : node) {
      const std::string name = item.first.Scalar();
      const std::string where = section + " '" + name + "'";
      if (!expect_map(item.second, file, where)) continue;
      const std::vector<std::string> keys = section == "output_parameters"
                                                ? std::vector<std::string>{"type", "description"}
                                                : std::vector<std::string>{"type", "description", "optional"};
      check_keys(item.second, file, keys, where);
      Json port{{"name", name}};
      for (const auto& key : keys)
        if (item.second[key]) port[key] = to_json(item.second[key], file);
      try {
        const auto manifest = parse_manifest(
            Json{{"name", "component.file"}, {"version", "1.0.0"}, {"kind", "generic"}, {section, Json::array({port})}});
        const auto& parsed = section == "inputs"    ? manifest.inputs
                             : section == "outputs" ? manifest.outputs
                                                    : manifest.output_parameters;
        ports.push_back(parsed.at(0));
      } catch (const ManifestError& e) {
        error(item.second, file, where + ": " + entry_message(e.what(), section + "[0]"));
      }
    }
    return ports;
  }

  CommandText text_of(const YAML::Node& node, const std::string& file, const std::string& what) {
    return CommandText{scalar(node, file, what).value_or(""), value_pos(node, file)};
  }

  void read_implementation(const YAML::Node& node, const std::string& file, const ComponentManifest& m,
                           CommandImplementation& impl) {
    if (!expect_map(node, file, "'implementation'")) return;
    check_keys(node, file, {"command", "args", "shell", "env", "workdir", "files", "image"}, "implementation");
    const auto command = node["command"], shell = node["shell"];
    if (command && shell)
      error(shell, file, "'implementation' has both 'command' and 'shell': use one");
    else if (!command && !shell)
      error(node, file, "'implementation' needs 'command: [PROGRAM, ARG, ...]' or 'shell: SCRIPT'");
    for (const auto& [key, list] : {std::pair{"command", command}, std::pair{"args", node["args"]}}) {
      if (!list) continue;
      if (!list.IsSequence() || (list.size() == 0 && std::string(key) == "command")) {
        error(list, file, "'implementation." + std::string(key) + "' must be a list of arguments");
        continue;
      }
      for (const auto& arg : list) impl.command.push_back(text_of(arg, file, "an argument"));
    }
    if (node["args"] && !command) error(node["args"], file, "'implementation.args' needs 'command'");
    if (shell) {
      impl.shell = text_of(shell, file, "'implementation.shell'");
      if (impl.shell->text.find("{{") != std::string::npos)
        error(shell, file,
              "a shell script reads its values from the environment ($KILN_PARAM_NAME, $KILN_INPUT_NAME, "
              "$KILN_OUTPUT_NAME), not from '{{ }}' placeholders");
    }
    if (const auto env = node["env"]; env && expect_map(env, file, "'implementation.env'"))
      for (const auto& item : env) {
        const std::string name = item.first.Scalar();
        if (!is_identifier(name))
          error(item.first, file, "environment variable name '" + name + "' is not an identifier");
        else if (name.rfind("KILN_", 0) == 0)
          error(item.first, file, "'" + name + "': names starting with KILN_ are set by kiln");
        impl.env.emplace_back(name, text_of(item.second, file, "environment variable '" + name + "'"));
      }
    if (const auto w = node["workdir"]) impl.workdir = text_of(w, file, "'implementation.workdir'");
    if (const auto i = node["image"]) {
      impl.image = scalar(i, file, "'implementation.image'").value_or("host");
      if (!is_image_reference(impl.image))
        error(i, file, "'implementation.image' must be host or oci:LAYOUT_DIR:TAG, not '" + impl.image + "'");
    }
    read_files(node["files"], file, impl);
    for (auto& arg : impl.command) bind_literal_file(arg, impl);
    for (const auto& arg : impl.command) check_placeholders(arg, m);
    for (const auto& [name, value] : impl.env) check_placeholders(value, m);
    if (impl.workdir) check_placeholders(*impl.workdir, m);
  }

  // `files:`: paths relative to the component file, inside its directory.
  void read_files(const YAML::Node& node, const std::string& file, CommandImplementation& impl) {
    if (!node) return;
    if (!node.IsSequence()) return error(node, file, "'implementation.files' must be a list of paths beside this file");
    for (const auto& item : node) {
      const auto text = scalar(item, file, "a 'files' entry");
      if (!text) continue;
      const fs::path relative = fs::path(*text).lexically_normal();
      if (text->empty() || relative.is_absolute() || *relative.begin() == "..") {
        error(item, file, "a 'files' entry must be a path inside this file's directory, not '" + *text + "'");
        continue;
      }
      std::error_code ec;
      if (!fs::is_regular_file(dir_ / relative, ec)) {
        error(item, file, "'" + (dir_ / relative).string() + "' is not a file");
        continue;
      }
      add_file(impl, dir_ / relative);
    }
  }

  // A literal argument naming a file beside the component file (a script)
  // is that file: made absolute, and part of the digest.
  void bind_literal_file(CommandText& arg, CommandImplementation& impl) {
    if (arg.text.empty() || arg.text.find("{{") != std::string::npos || fs::path(arg.text).is_absolute()) return;
    const fs::path relative = fs::path(arg.text).lexically_normal();
    if (*relative.begin() == "..") return;
    std::error_code ec;
    if (!fs::is_regular_file(dir_ / relative, ec)) return;
    arg.text = (dir_ / relative).string();
    add_file(impl, dir_ / relative);
  }

  static void add_file(CommandImplementation& impl, const fs::path& path) {
    if (std::find(impl.files.begin(), impl.files.end(), path) == impl.files.end()) impl.files.push_back(path);
  }

  // Every placeholder names a declared parameter, input or output, or one of kiln's directories.
  void check_placeholders(const CommandText& text, const ComponentManifest& m) {
    try {
      for (const auto& placeholder : find_placeholders(Json(text.text)))
        for (const auto& [name, column] : placeholder.expression.reference_positions()) {
          if (known(name, m)) continue;
          SourcePos at = text.pos;
          at.column += static_cast<int>(placeholder.column + column) - 2;
          diagnostics_.push_back(
              {at, "unknown placeholder '" + name + "'" + did_you_mean(name, names(m)) +
                       " (use params.NAME, inputs.NAME, outputs.NAME, component.dir, temp_dir, checkpoint_dir or "
                       "report_file)"});
        }
    } catch (const ExpressionError& e) {
      SourcePos at = text.pos;
      at.column += static_cast<int>(e.column()) - 1;
      diagnostics_.push_back({at, e.what()});
    }
  }

  static std::vector<std::string> names(const ComponentManifest& m) {
    std::vector<std::string> all{"component.dir", "temp_dir", "checkpoint_dir", "report_file"};
    for (const auto& p : m.parameters) all.push_back("params." + p.name);
    for (const auto& p : m.inputs) all.push_back("inputs." + p.name);
    for (const auto& p : m.outputs) all.push_back("outputs." + p.name);
    return all;
  }

  static bool known(const std::string& name, const ComponentManifest& m) {
    const auto all = names(m);
    return std::find(all.begin(), all.end(), name) != all.end();
  }

  fs::path dir_;
};

// Fills the component's digest and its file-by-file digests.
void take_digests(const std::string& text, ComponentFile& component) {
  const std::string own = sha256_hex(text);
  std::string listing = kDigestPrefix + own + "\n";
  std::vector<fs::path> files = component.implementation.files;
  std::sort(files.begin(), files.end());
  const fs::path dir = component.path.parent_path();
  component.file_digests[component.path.filename().string()] = own;
  for (const auto& f : files) {
    const std::string relative = f.lexically_relative(dir).string(), digest = sha256_file(f);
    listing += relative + '\0' + digest + "\n";
    component.file_digests[relative] = digest;
  }
  component.digest = sha256_hex(listing);
}

}  // namespace

ComponentFile parse_component_text(const std::string& text, const fs::path& file) {
  const YAML::Node root = load_yaml_document(text, file.string(), kMaxComponentFileBytes, "the component file");
  std::vector<Diagnostic> diagnostics;
  ComponentFile component;
  try {
    component = ComponentReader(diagnostics).parse(root, file);
  } catch (const std::bad_alloc&) {
    throw SpecError({{SourcePos{file.string(), 1, 1}, "the component file is too large to read (out of memory)"}});
  }
  if (!diagnostics.empty()) throw SpecError(std::move(diagnostics));
  try {
    take_digests(text, component);
  } catch (const std::exception& e) {  // a named file vanished or cannot be read
    throw SpecError({{SourcePos{file.string(), 1, 1}, e.what()}});
  }
  return component;
}

ComponentFile parse_component_file(const fs::path& file) {
  std::error_code ec;
  const auto status = fs::status(file, ec);
  if (ec || !fs::is_regular_file(status))
    throw SpecError({{SourcePos{file.string(), 1, 1}, "cannot read the component file (not a regular file)"}});
  if (fs::file_size(file, ec) > kMaxComponentFileBytes)
    throw SpecError({{SourcePos{file.string(), 1, 1},
                      "the component file is larger than " + std::to_string(kMaxComponentFileBytes) + " bytes"}});
  std::ifstream in(file);
  if (!in) throw SpecError({{SourcePos{file.string(), 1, 1}, "cannot read the component file"}});
  std::ostringstream text;
  text << in.rdbuf();
  return parse_component_text(text.str(), file);
}

LibraryScan scan_component_file(const fs::path& file) {
  LibraryScan scan;
  scan.path = file;
  try {
    ComponentFile component = parse_component_file(file);
    scan.digest = component.digest;
    scan.file_digests = std::move(component.file_digests);
    scan.components.push_back(std::move(component.manifest));
    scan.ok = true;
  } catch (const std::exception& e) {
    scan.reason = e.what();
  }
  return scan;
}

const std::vector<std::string>& command_placeholders() {
  static const std::vector<std::string> names{"params.NAME", "inputs.NAME", "outputs.NAME", "component.dir",
                                              "temp_dir",    "checkpoint_dir", "report_file"};
  return names;
}

std::string render_command_text(const std::string& text, const CommandValues& values) {
  const auto entry = [](const std::map<std::string, std::string>& map, const std::string& key) -> Json {
    const auto it = map.find(key);
    if (it == map.end()) throw ExpressionError("no directory '" + key + "'", 1);
    return it->second;
  };
  const Expression::Resolver resolve = [&](const std::string& name) -> Json {
    const auto dot = name.find('.');
    const std::string head = name.substr(0, dot), tail = dot == std::string::npos ? "" : name.substr(dot + 1);
    if (head == "params" && values.parameters.contains(tail)) return values.parameters.at(tail);
    if (head == "inputs") return entry(values.inputs, tail);
    if (head == "outputs") return entry(values.outputs, tail);
    if (name == "component.dir") return values.component_dir;
    if (name == "temp_dir") return values.temp_dir;
    if (name == "checkpoint_dir") return values.checkpoint_dir;
    if (name == "report_file") return values.report_file;
    throw ExpressionError("unknown placeholder '" + name + "'", 1);
  };
  const Json rendered = render_placeholders(Json(text), resolve);
  return rendered.is_string() ? rendered.get<std::string>() : rendered.dump();
}

}  // namespace kiln::host
