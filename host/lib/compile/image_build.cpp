// `kiln image build`: see image_build.hpp. The image's files are put together
// in a staging directory beside the layout (the same layout a pod and the
// container executor see: kiln_image.hpp), then added as one layer with
// `umoci insert`; `umoci config` sets the user, environment and entrypoint.
#include <kiln/host/component_file.hpp>
#include <kiln/host/files.hpp>
#include <kiln/host/image_build.hpp>
#include <kiln/host/json.hpp>
#include <kiln/host/paths.hpp>
#include <kiln/host/subprocess.hpp>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <set>
#include <sstream>
#include <stdexcept>

namespace kiln::host {
namespace fs = std::filesystem;

namespace {

constexpr auto kUmociTimeout = std::chrono::minutes(20);  // a LibTorch layer is half a gigabyte

CapturedRun umoci(const std::vector<std::string>& args) {
  std::vector<std::string> argv{"/usr/bin/env", "umoci"};
  argv.insert(argv.end(), args.begin(), args.end());
  const CapturedRun run = run_with_result_channel(argv, kUmociTimeout);
  if (run.status.code == 127)
    throw std::runtime_error("kiln image build needs umoci, which is not installed (Debian package: umoci)");
  return run;
}

void umoci_or_throw(const std::vector<std::string>& args) {
  const CapturedRun run = umoci(args);
  if (!run.status.success())
    throw std::runtime_error("umoci " + args.front() + " " + run.status.describe() + ": " + run.output);
}

// The path `inside` (absolute) under the staging root.
fs::path staged(const fs::path& root, const fs::path& inside) {
  if (!inside.is_absolute() || inside.lexically_normal() != inside)
    throw std::runtime_error("'" + inside.string() + "': a place in the image must be an absolute, normal path");
  return root / inside.relative_path();
}

// Copies a file's contents (a link is followed: the image gets what it points at) with its mode; counts bytes.
void put_file(const fs::path& from, const fs::path& to, uint64_t& bytes) {
  if (!fs::is_regular_file(from)) throw std::runtime_error(from.string() + ": no such file");
  fs::create_directories(to.parent_path());
  if (fs::exists(fs::symlink_status(to))) {
    if (read_file(to) == read_file(from)) return;  // the same library reached twice
    throw std::runtime_error(to.string() + ": two different files would go to the same place in the image");
  }
  fs::copy_file(from, to);
  fs::permissions(to, fs::status(from).permissions() | fs::perms::others_read | fs::perms::group_read);
  bytes += fs::file_size(to);
}

// A directory copied whole (links kept as links, `skip` left out: the layout
// being written and its staging directory may lie inside the pipeline's
// directory), or one file.
void put_tree(const fs::path& from, const fs::path& to, const std::vector<fs::path>& skip, uint64_t& bytes) {
  if (fs::is_regular_file(from)) return put_file(from, to, bytes);
  if (!fs::is_directory(from)) throw std::runtime_error(from.string() + ": no such file or directory");
  fs::create_directories(to);
  std::error_code not_there;  // `skip` need not exist yet
  for (auto it = fs::recursive_directory_iterator(from); it != fs::recursive_directory_iterator(); ++it) {
    const fs::path target = to / it->path().lexically_relative(from);
    // Left out: the layout being written, kiln workspaces (runs and their
    // artifacts) and other OCI layouts, which have no place in an image.
    const bool skipped = std::any_of(skip.begin(), skip.end(),
                                     [&](const fs::path& s) { return fs::equivalent(it->path(), s, not_there); });
    if (skipped ||
        (it->is_directory() && !it->is_symlink() &&
         (it->path().filename() == ".kiln" || fs::exists(it->path() / "oci-layout") ||
          fs::exists(it->path() / "kiln.db")))) {
      if (it->is_directory()) it.disable_recursion_pending();
      continue;
    }
    if (it->is_symlink()) {
      fs::copy_symlink(it->path(), target);
    } else if (it->is_directory()) {
      fs::create_directories(target);
    } else if (it->is_regular_file()) {
      fs::copy_file(it->path(), target);
      bytes += it->file_size();
    }
  }
}

void put_text(const fs::path& to, const std::string& text, fs::perms mode = fs::perms(0644)) {
  fs::create_directories(to.parent_path());
  write_file_atomic(to, text);
  fs::permissions(to, mode);
}

// A component's place in the image (component_place_in): plugin libraries by
// file name; each component file in a folder of its own with the files it
// names, beside it as they were.
void put_component(const fs::path& component, const KilnImage& image, const fs::path& root, uint64_t& bytes) {
  const fs::path place = staged(root, component_place_in(image.plugins, component));
  if (!is_component_file(component)) return put_file(component, place, bytes);
  const ComponentFile parsed = parse_component_file(component);
  const fs::path home = parsed.path.parent_path();
  put_file(parsed.path, place, bytes);
  for (const auto& file : parsed.implementation.files)
    put_file(file, place.parent_path() / file.lexically_relative(home), bytes);
}

// Whatever the builder's umask and the sources' modes: the image's user
// (not root) must read every file and enter every directory.
void make_readable_by_all(const fs::path& root) {
  const auto readable = [](const fs::path& p, bool directory) {
    fs::perms mode = fs::symlink_status(p).permissions() | fs::perms::owner_read | fs::perms::group_read |
                     fs::perms::others_read;
    if (directory || (mode & fs::perms::owner_exec) != fs::perms::none)
      mode |= fs::perms::owner_exec | fs::perms::group_exec | fs::perms::others_exec;
    fs::permissions(p, mode);
  };
  readable(root, true);
  for (const auto& entry : fs::recursive_directory_iterator(root))
    if (!entry.is_symlink()) readable(entry.path(), entry.is_directory());
}

// The directories the libraries were found in, for LD_LIBRARY_PATH: what
// the host found through ld.so.conf or its own LD_LIBRARY_PATH, a pod finds too.
std::string library_path(const std::vector<fs::path>& libraries) {
  std::vector<std::string> dirs;
  for (const auto& library : libraries) {
    const std::string dir = library.parent_path().string();
    if (std::find(dirs.begin(), dirs.end(), dir) == dirs.end()) dirs.push_back(dir);
  }
  std::string out;
  for (const auto& dir : dirs) out += (out.empty() ? "" : ":") + dir;
  return out;
}

std::string passwd(const KilnImage& image) {
  std::ostringstream out;
  out << "root:x:0:0:root:/root:/usr/sbin/nologin\n"
      << image.user << ":x:" << image.uid << ":" << image.gid << ":kiln steps:/tmp:/usr/sbin/nologin\n"
      << "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
  return out.str();
}

std::string group(const KilnImage& image) {
  std::ostringstream out;
  out << "root:x:0:\n" << image.user << ":x:" << image.gid << ":\n" << "nogroup:x:65534:\n";
  return out.str();
}

bool layout_has_tag(const fs::path& layout, const std::string& tag) {
  const Json index = Json::parse(read_file(layout / "index.json"));
  for (const auto& m : index.value("manifests", Json::array()))
    if (m.value("annotations", Json::object()).value("org.opencontainers.image.ref.name", "") == tag) return true;
  return false;
}

std::string manifest_digest(const fs::path& layout, const std::string& tag) {
  const Json index = Json::parse(read_file(layout / "index.json"));
  for (const auto& m : index.value("manifests", Json::array()))
    if (m.value("annotations", Json::object()).value("org.opencontainers.image.ref.name", "") == tag)
      return m.value("digest", "");
  throw std::runtime_error(layout.string() + ": umoci wrote no tag '" + tag + "'");
}

}  // namespace

std::vector<fs::path> plugins_of(const Plan& plan) {
  std::vector<fs::path> out;
  const auto add = [&](const fs::path& library) {
    if (std::find(out.begin(), out.end(), library) == out.end()) out.push_back(library);
  };
  std::vector<const PlannedStep*> pending;
  for (const auto& step : plan.steps) pending.push_back(&step);
  for (size_t i = 0; i < pending.size(); ++i) {
    const PlannedStep& step = *pending[i];
    add(step.component.library);
    if (step.tuner) add(step.tuner->library);
    for (const auto& trial : step.trial_steps) pending.push_back(&trial);
  }
  return out;
}

std::vector<fs::path> shared_library_closure(const std::vector<fs::path>& elf_files) {
  std::set<fs::path> libraries;
  for (const auto& file : elf_files) {
    // ldd runs the loader on the file: fine for kiln's own binaries and plugins, never for untrusted ones.
    const CapturedRun run = run_with_result_channel({"/usr/bin/env", "ldd", fs::absolute(file).string()},
                                                    std::chrono::seconds(60));
    if (run.output.find("not a dynamic executable") != std::string::npos) continue;
    if (!run.status.success()) throw std::runtime_error("ldd " + file.string() + " " + run.status.describe() + ": " + run.output);
    std::istringstream lines(run.output);
    for (std::string line; std::getline(lines, line);) {
      const auto arrow = line.find("=> ");
      std::string path = arrow == std::string::npos ? line : line.substr(arrow + 3);
      path.erase(0, path.find_first_not_of(" \t"));
      if (path.rfind("not found", 0) == 0)
        throw std::runtime_error(file.string() + " needs " + line.substr(0, arrow) +
                                 ", which the dynamic loader does not find on this host");
      if (path.empty() || path[0] != '/') continue;  // linux-vdso.so.1: the kernel's
      libraries.insert(path.substr(0, path.find(" (")));
    }
  }
  return {libraries.begin(), libraries.end()};
}

BuiltImage build_image(const ImageBuildOptions& options) {
  const auto say = [&](const std::string& line) {
    if (options.progress) options.progress(line);
  };
  if (options.tag.empty() || options.tag.find_first_of(":/ ") != std::string::npos)
    throw std::runtime_error("image tag '" + options.tag + "': must be a plain name such as v1 or latest");
  const KilnImage& image = options.image;
  const fs::path layout = fs::absolute(options.layout);
  fs::create_directories(layout.parent_path());
  // A private directory beside the layout (mkdtemp: no name another user can
  // prepare; the same filesystem as the layout).
  std::string pattern = (layout.parent_path() / ".kiln-image-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr)
    throw std::runtime_error("cannot make a staging directory beside " + layout.string() + ": " + std::strerror(errno));
  const RemoveOnExit staging{pattern};
  const fs::path root = staging.path / "rootfs";
  BuiltImage built;

  say("collecting kiln, " + std::to_string(options.components.size()) + " component(s) and their libraries");
  std::vector<fs::path> elf_files{options.kiln};
  for (const auto& c : options.components)
    if (!is_component_file(c)) elf_files.push_back(c);
  built.libraries = shared_library_closure(elf_files);
  put_file(options.kiln, staged(root, image.kiln), built.bytes);
  for (const auto& c : options.components) put_component(c, image, root, built.bytes);
  // Component files' `import kiln_report`: lib/kiln/python beside kiln's bin/, where the command runner looks.
  const fs::path python_helper = options.kiln.parent_path().parent_path() / "lib" / "kiln" / "python";
  const bool commands = std::any_of(options.components.begin(), options.components.end(),
                                    [](const fs::path& c) { return is_component_file(c); });
  if (std::error_code ec; commands && fs::is_directory(python_helper, ec))
    put_tree(python_helper, staged(root, image.kiln.parent_path().parent_path() / "lib" / "kiln" / "python"),
             {layout, staging.path},
             built.bytes);
  for (const auto& library : built.libraries) put_file(library, staged(root, library), built.bytes);
  if (!options.pipeline_source.empty()) {
    const char* home = std::getenv("HOME");
    std::error_code no_home;
    if (options.pipeline_source == "/" ||
        (home != nullptr && *home != '\0' && fs::equivalent(options.pipeline_source, home, no_home)))
      throw std::runtime_error("the pipeline's directory " + options.pipeline_source.string() +
                               " is the root or the home directory: it would all go into the image (move the "
                               "pipeline into a directory of its own)");
  }
  if (!options.pipeline_source.empty())
    put_tree(options.pipeline_source, staged(root, image.pipeline_dir), {layout, staging.path}, built.bytes);
  for (const auto& [from, to] : options.extra) {
    if (!to.is_absolute()) throw std::runtime_error("--add " + from.string() + ":" + to.string() + ": the place in the image must be absolute");
    put_tree(from, staged(root, to.lexically_normal()), {layout, staging.path}, built.bytes);
  }
  put_text(staged(root, "/etc/passwd"), passwd(image));
  put_text(staged(root, "/etc/group"), group(image));
  put_text(staged(root, kKilnImageFile), kiln_image_text(image));
  for (const char* mountpoint : {"proc", "sys", "dev"}) fs::create_directories(root / mountpoint);  // a runtime's
  fs::create_directories(root / "tmp");
  make_readable_by_all(root);
  fs::permissions(root / "tmp", fs::perms::all | fs::perms::sticky_bit);

  say("writing " + std::to_string(built.bytes >> 20) + " MiB into " + layout.string() + ":" + options.tag);
  if (!fs::exists(layout / "index.json")) umoci_or_throw({"init", "--layout", layout.string()});
  // Built under a tag of its own and renamed at the end: a build that fails
  // leaves the tag it was to replace as it was.
  const std::string building = options.tag + "-kiln-building-" + std::to_string(::getpid());
  const std::string scratch = layout.string() + ":" + building;
  try {
    if (layout_has_tag(layout, building)) umoci_or_throw({"rm", "--image", scratch});
    umoci_or_throw({"new", "--image", scratch});
    umoci_or_throw({"insert", "--image", scratch, root.string(), "/"});
    const std::string user = std::to_string(image.uid) + ":" + std::to_string(image.gid);
    umoci_or_throw({"config", "--image", scratch, "--config.user", user, "--config.workingdir", "/tmp",
                    "--config.env", "PATH=" + image.kiln.parent_path().string() + ":/usr/local/bin:/usr/bin:/bin",
                    "--config.env", "HOME=/tmp", "--config.env", "KILN_PLUGIN_PATH=" + image.plugins.string(),
                    "--config.env", "LD_LIBRARY_PATH=" + library_path(built.libraries), "--config.entrypoint",
                    image.kiln.string(), "--config.label", "org.kiln.image=1"});
    if (layout_has_tag(layout, options.tag)) umoci_or_throw({"rm", "--image", layout.string() + ":" + options.tag});
    umoci_or_throw({"tag", "--image", scratch, options.tag});
    umoci_or_throw({"rm", "--image", scratch});
  } catch (...) {
    if (layout_has_tag(layout, building)) (void)umoci({"rm", "--image", scratch});
    throw;
  }
  umoci_or_throw({"gc", "--layout", layout.string()});
  built.reference = "oci:" + layout.string() + ":" + options.tag;
  built.digest = manifest_digest(layout, options.tag);
  return built;
}

}  // namespace kiln::host
