// Component files (apiVersion kiln/v1, kind Component): a component without
// C++, a command or a script kiln runs with typed parameters, input and
// output directories, beside shared-library plugins (docs/command-components.md).
#pragma once

#include <kiln/host/manifest.hpp>
#include <kiln/host/scanner.hpp>
#include <kiln/host/spec.hpp>

#include <cstddef>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace kiln::host {

// A component file is read whole; one larger is refused before parsing.
inline constexpr std::size_t kMaxComponentFileBytes = 1u << 20;

// Text of an argument, an environment value or the working directory, with
// `{{ NAME }}` placeholders (command_placeholders() lists the names).
struct CommandText {
  std::string text;
  SourcePos pos;
};

// `implementation:`: what runs. Exactly one of `command` (argv, no shell)
// and `shell` (a script for /bin/sh -c, which reads its values from the
// environment: no placeholders inside it, so no quoting to get wrong).
struct CommandImplementation {
  std::vector<CommandText> command;  // `command` then `args`
  std::optional<CommandText> shell;
  std::vector<std::pair<std::string, CommandText>> env;
  std::optional<CommandText> workdir;  // default: the attempt's directory
  // The files that travel with the component (absolute): a literal argument
  // naming a file beside the component file, and every `files:` entry. Their
  // contents are part of the component's digest, so of every cache key.
  std::vector<std::filesystem::path> files;
  std::string image;  // the container executor's image; "" = the step's
};

struct ComponentFile {
  std::filesystem::path path;  // absolute
  ComponentManifest manifest;
  CommandImplementation implementation;
  // sha256 over the file and the files it names (see component_file_digest).
  std::string digest;
  // The same, file by file: this file's name and each named file's path,
  // relative to this file's directory -> sha256 of its content. What a cache
  // miss names ("file 'count.py' changed").
  std::map<std::string, std::string> file_digests;
};

// Parses component file text; `file` names it in messages and anchors
// relative paths. Throws SpecError with every problem at file:line:col.
ComponentFile parse_component_text(const std::string& text, const std::filesystem::path& file);
// Reads and parses a component file (at most kMaxComponentFileBytes).
ComponentFile parse_component_file(const std::filesystem::path& file);

// The component file as the catalog lists it: a LibraryScan (path, digest,
// one manifest) that is never loaded; problems in `reason`. Never throws.
LibraryScan scan_component_file(const std::filesystem::path& file);

// The placeholders a CommandText may hold: params.NAME, inputs.NAME,
// outputs.NAME, component.dir, temp_dir, checkpoint_dir, report_file.
const std::vector<std::string>& command_placeholders();

// The values of one run of a command: what each placeholder names.
struct CommandValues {
  Json parameters = Json::object();
  std::map<std::string, std::string> inputs, outputs;  // name -> directory ("" for an absent optional input)
  std::string component_dir, temp_dir, checkpoint_dir, report_file;
};

// `text` with each `{{ expression }}` (the pipeline's placeholder grammar:
// params.lr * 2 works) evaluated against `values`; a string value as it is,
// any other as JSON. Throws ExpressionError.
std::string render_command_text(const std::string& text, const CommandValues& values);

}  // namespace kiln::host
