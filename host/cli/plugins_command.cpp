// `kiln plugins list` and `kiln plugins describe`.
#include "cli.hpp"
#include "pipeline_options.hpp"

#include <kiln/host/catalog.hpp>
#include <kiln/host/component_file.hpp>
#include <kiln/host/paths.hpp>
#include <kiln/host/suggest.hpp>

#include <iomanip>
#include <iostream>
#include <optional>

namespace kiln::cli {
namespace {

using host::Json;

Json library_json(const host::LibraryScan& scan) {
  Json j{{"path", scan.path.string()}, {"digest", scan.digest}, {"status", scan.ok ? "ok" : "error"}};
  const bool command = host::is_component_file(scan.path);
  j["implementation"] = command ? "command" : "library";
  if (scan.ok) {
    if (!command) j["abi"] = std::to_string(scan.abi_major) + "." + std::to_string(scan.abi_minor);
    j["components"] = Json::array();
    for (const auto& c : scan.components) j["components"].push_back(c.name);
  } else {
    j["reason"] = scan.reason;
  }
  return j;
}

Json catalog_json(const host::PluginCatalog& catalog) {
  Json search = Json::array(), libraries = Json::array(), components = Json::array();
  for (const auto& dir : host::plugin_search_path()) search.push_back(dir.string());
  for (const auto& scan : catalog.libraries()) libraries.push_back(library_json(scan));
  for (const auto& c : catalog.components())
    components.push_back(Json{{"name", c.manifest.name},
                              {"version", c.manifest.version.str()},
                              {"kind", c.manifest.kind},
                              {"description", c.manifest.description},
                              {"library", c.library.string()},
                              {"implementation", host::is_component_file(c.library) ? "command" : "library"},
                              {"status", c.status}});
  return Json{{"search_path", search}, {"components", components}, {"libraries", libraries}};
}

void print_catalog(const host::PluginCatalog& catalog) {
  size_t name_width = 4;
  for (const auto& c : catalog.components()) name_width = std::max(name_width, c.manifest.name.size());
  std::cout << std::left << std::setw(static_cast<int>(name_width) + 2) << "NAME" << std::setw(10) << "VERSION"
            << std::setw(10) << "KIND" << std::setw(8) << "STATUS"
            << "LIBRARY OR COMPONENT FILE\n";
  for (const auto& c : catalog.components())
    std::cout << std::setw(static_cast<int>(name_width) + 2) << c.manifest.name << std::setw(10)
              << c.manifest.version.str() << std::setw(10) << c.manifest.kind << std::setw(8)
              << (c.status == "ok" ? "ok" : "shadowed") << c.library.string() << "\n";
  for (const auto& c : catalog.components())
    if (c.status != "ok")
      std::cout << "note: " << c.manifest.name << " " << c.manifest.version.str() << " in " << c.library.string()
                << " is " << c.status << "; the first library on the path wins, and this one is used only by a"
                << " version range the earlier one does not accept\n";
  for (const auto& scan : catalog.libraries())
    if (!scan.ok) std::cout << "skipped " << scan.path.string() << ": " << scan.reason << "\n";
  if (catalog.libraries().empty()) std::cout << "no plugin libraries found; set KILN_PLUGIN_PATH\n";
}

void print_ports(const char* title, const std::vector<host::PortSpec>& ports, bool show_optional) {
  if (ports.empty()) return;
  std::cout << title << ":\n";
  for (const auto& p : ports)
    std::cout << "  " << p.name << " (" << p.type << (show_optional && p.optional ? ", optional" : "") << ")"
              << (p.description.empty() ? "" : ": " + p.description) << "\n";
}

void print_manifest(const host::CatalogComponent& c) {
  const auto& m = c.manifest;
  std::cout << m.name << " " << m.version.str() << " (" << m.kind << ")\n";
  if (!m.description.empty()) std::cout << m.description << "\n";
  std::cout << (host::is_component_file(c.library) ? "component file: " : "library: ") << c.library.string() << "\n";
  if (!m.parameters.empty()) std::cout << "parameters:\n";
  for (const auto& p : m.parameters) {
    std::cout << "  " << p.name << " (" << host::value_type_name(p.type);
    std::cout << (p.default_value ? ", default " + p.default_value->dump() : ", required");
    if (p.min) std::cout << ", min " << host::bound_json(*p.min).dump();
    if (p.max) std::cout << ", max " << host::bound_json(*p.max).dump();
    if (!p.choices.empty()) std::cout << ", one of " << host::Json(p.choices).dump();
    std::cout << ")" << (p.description.empty() ? "" : ": " + p.description) << "\n";
  }
  print_ports("inputs", m.inputs, true);
  print_ports("outputs", m.outputs, false);
  print_ports("output parameters", m.output_parameters, false);
}

}  // namespace

void add_plugins_commands(CLI::App& app, Commands& commands) {
  CLI::App* group = Commands::add_group(app, "plugins", "List and describe the installed plugins");

  static bool list_json = false;
  auto* list = commands.add(*group, "list", "List every component found on the plugin search path", [] {
    const auto catalog = host::discover_default_catalog();
    if (list_json)
      std::cout << catalog_json(catalog).dump(2) << "\n";
    else
      print_catalog(catalog);
    return kExitOk;
  });
  list->add_flag("--json", list_json, "Print JSON instead of a table");

  static bool describe_json = false;
  static std::string name;
  auto* describe = commands.add(*group, "describe", "Show a component's ports, parameters and defaults", [] {
    // A component file by path: checked (file:line:col) and described without the search path.
    std::optional<host::CatalogComponent> from_file;
    if (host::is_component_file(name)) {
      host::ComponentFile file;
      try {
        file = host::parse_component_file(name);
      } catch (const host::SpecError& e) {
        throw spec_problems(e, name);
      }
      from_file = host::CatalogComponent{std::move(file.manifest), file.path, "ok", file.digest, file.file_digests};
    }
    const auto catalog = from_file ? host::PluginCatalog() : host::discover_default_catalog();
    const auto* component = from_file ? &*from_file : catalog.find(name);
    if (component == nullptr)
      throw CommandError("unknown component '" + name + "'" + host::did_you_mean(name, catalog.component_names()) +
                         "; 'kiln plugins list' shows what is installed");
    if (describe_json) {
      auto j = component->manifest.to_json();
      j["library"] = component->library.string();
      std::cout << j.dump(2) << "\n";
    } else {
      print_manifest(*component);
    }
    return kExitOk;
  });
  describe->add_option("NAME", name, "Component name, e.g. util.echo, or a component file (NAME.yaml)")->required();
  describe->add_flag("--json", describe_json, "Print the manifest as JSON");
}

}  // namespace kiln::cli
