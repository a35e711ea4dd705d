// The plugin registry on the command line (docs/registry.md):
//   kiln keys generate|trust|list
//   kiln plugin pack|publish|search|show|install|list|remove|yank|new
//   kiln registry serve|token create
#include "cli.hpp"

#include <kiln/host/catalog.hpp>
#include <kiln/host/scanner.hpp>
#include <kiln/registry/client.hpp>
#include <kiln/registry/package.hpp>
#include <kiln/registry/scaffold.hpp>
#include <kiln/registry/server.hpp>

#include <pthread.h>
#include <csignal>
#include <iomanip>
#include <iostream>

namespace kiln::cli {
namespace fs = std::filesystem;
namespace reg = kiln::registry;
using host::Json;

namespace {

// Wraps library failures as CommandError so they print as "kiln: <message>".
template <typename F>
int guarded(F&& f) {
  try {
    return f();
  } catch (const CommandError&) {
    throw;
  } catch (const std::exception& e) {
    throw CommandError(e.what());
  }
}

// Splits NAME@RANGE.
std::pair<std::string, std::string> split_spec(const std::string& spec) {
  const auto at = spec.find('@');
  if (at == std::string::npos) return {spec, ""};
  return {spec.substr(0, at), spec.substr(at + 1)};
}

// Fills ABI and components from a scan of the library (in a child process).
void fill_from_scan(reg::PackageManifest& m, const fs::path& library) {
  const host::LibraryScanner scanner(host::default_scanner_options());
  const auto scan = scanner.scan(fs::absolute(library));
  if (!scan.ok) throw CommandError(library.string() + " is not a usable plugin library: " + scan.reason);
  m.abi_major = scan.abi_major;
  m.abi_minor = scan.abi_minor;
  std::vector<std::string> provided;
  for (const auto& c : scan.components) provided.push_back(c.name);
  if (m.components.empty()) m.components = provided;
  for (const auto& c : m.components)
    if (std::find(provided.begin(), provided.end(), c) == provided.end())
      throw CommandError("kiln-package.json: field 'components' names '" + c + "', which " + library.string() +
                         " does not provide");
}

// How the plugin commands reach a registry: --registry, --ca-file, --insecure, --max-download-mb.
struct ClientFlags {
  std::string registry;
  std::string ca_file;
  bool insecure = false;
  uint64_t max_download_mb = reg::ClientOptions{}.max_answer_bytes >> 20;

  void add_to(CLI::App& command) {
    command.add_option("--registry", registry, "Registry URL (default: $KILN_REGISTRY or the user config)");
    command.add_option("--ca-file", ca_file, "PEM file of the CAs to trust for an https:// registry (default: the system's)");
    command.add_flag("--insecure", insecure, "Allow plain http:// to a registry on another machine");
    command.add_option("--max-download-mb", max_download_mb, "Largest registry answer or package accepted, in MiB")
        ->check(CLI::PositiveNumber);
  }
  reg::RegistryClient client() const {
    reg::ClientOptions options;
    options.ca_file = ca_file;
    options.insecure = insecure;
    options.max_answer_bytes = max_download_mb << 20;
    return reg::RegistryClient(reg::registry_url(registry), options);
  }
};

void add_keys_commands(CLI::App& app, Commands& commands) {
  CLI::App* group = Commands::add_group(app, "keys", "Manage publisher keys and the keys this machine trusts");
  static std::string out_dir;
  static bool force = false;
  auto* generate = commands.add(*group, "generate", "Create an Ed25519 key pair for signing packages", [] {
    return guarded([] {
      const fs::path dir = out_dir.empty() ? reg::own_keys_dir() : fs::path(out_dir);
      const fs::path private_key = dir / "publisher.key", public_key = dir / "publisher.pub";
      if (fs::exists(private_key) && !force)
        throw CommandError(private_key.string() + " already exists; pass --force to replace it");
      const auto key = reg::Key::generate();
      key.save_private(private_key);
      key.save_public(public_key);
      std::cout << "key " << key.id() << "\nprivate key: " << private_key.string()
                << " (keep it secret)\npublic key:  " << public_key.string()
                << " (give it to users: kiln keys trust FILE)\n";
      return kExitOk;
    });
  });
  generate->add_option("--out", out_dir, "Directory for publisher.key and publisher.pub (default: the user key dir)");
  generate->add_flag("--force", force, "Replace an existing key pair");

  static std::string trust_file;
  auto* trust = commands.add(*group, "trust", "Trust packages signed by the key in a public key file", [] {
    return guarded([] {
      const auto key = reg::Key::load_public(trust_file);
      const fs::path dest = reg::trusted_keys_dir() / (key.id() + ".pub");
      key.save_public(dest);
      std::cout << "trusting key " << key.id() << " (" << dest.string() << ")\n";
      return kExitOk;
    });
  });
  trust->add_option("FILE", trust_file, "A public key in PEM form (publisher.pub)")->required();

  commands.add(*group, "list", "List the trusted keys", [] {
    return guarded([] {
      for (const auto& key : reg::load_trusted_keys(reg::trusted_keys_dir())) std::cout << key.id() << "\n";
      return kExitOk;
    });
  });
}

// Where an installed package's files are: its library, its component files, or both.
std::string installed_files(const reg::InstalledPackage& p) {
  std::string out = p.library.string();
  if (!p.components_dir.empty()) out += (out.empty() ? "" : " ") + p.components_dir.string() + "/";
  return out;
}

void print_installed(const reg::InstalledPackage& p, const char* verb) {
  std::cout << verb << " " << p.manifest.name << " " << p.manifest.version.str() << " (signed by " << p.signer
            << ") -> " << installed_files(p) << "\n";
}

void add_plugin_commands(CLI::App& app, Commands& commands) {
  CLI::App* group =
      Commands::add_group(app, "plugin", "Package, publish, search, install and scaffold plugins (the registry)");

  static std::string pack_dir, pack_key, pack_out;
  auto* pack = commands.add(*group, "pack", "Pack DIR (kiln-package.json and what it names) into a signed .kpkg", [] {
    return guarded([] {
      const fs::path key_file = pack_key.empty() ? reg::own_keys_dir() / "publisher.key" : fs::path(pack_key);
      if (!fs::exists(key_file))
        throw CommandError("no signing key at " + key_file.string() + "; create one with 'kiln keys generate'");
      const auto key = reg::Key::load_private(key_file);
      const fs::path out =
          reg::pack(pack_dir, key, pack_out.empty() ? fs::current_path() : fs::path(pack_out), fill_from_scan);
      std::cout << "packed " << out.string() << " (signed by " << key.id() << ")\n";
      return kExitOk;
    });
  });
  pack->add_option("DIR", pack_dir, "Directory holding kiln-package.json")->required();
  pack->add_option("--key", pack_key, "Private key (default: the one 'kiln keys generate' made)");
  pack->add_option("--out", pack_out, "Where to write the .kpkg (default: the current directory)");

  static ClientFlags flags;
  static std::string publish_file;
  auto* publish = commands.add(*group, "publish", "Upload a .kpkg to a registry", [] {
    return guarded([] {
      const std::string token = reg::registry_token();
      if (token.empty())
        throw CommandError("publishing needs a token: set KILN_REGISTRY_TOKEN or \"token\" in " +
                           reg::user_config_file().string());
      const reg::RegistryClient client = flags.client();
      const Json answer = client.publish(publish_file, token);
      std::cout << "published " << answer.value("name", "") << " " << answer.value("version", "") << " to "
                << client.url() << "\n";
      return kExitOk;
    });
  });
  publish->add_option("PKG", publish_file, "The .kpkg file")->required();
  flags.add_to(*publish);

  static std::string search_term;
  static bool search_json = false;
  auto* search = commands.add(*group, "search", "Search a registry by name, description or component", [] {
    return guarded([] {
      const reg::RegistryClient client = flags.client();
      const Json found = client.search(search_term);
      if (search_json) {
        std::cout << found.dump(2) << "\n";
        return kExitOk;
      }
      if (found.empty()) std::cout << "no packages match '" << search_term << "'\n";
      for (const auto& p : found)
        std::cout << std::left << std::setw(24) << p.value("name", "") << std::setw(10) << p.value("latest", "")
                  << p.value("description", "") << "\n";
      return kExitOk;
    });
  });
  search->add_option("TERM", search_term, "What to look for");
  flags.add_to(*search);
  search->add_flag("--json", search_json, "Print JSON");

  static std::string show_name;
  static bool show_json = false;
  auto* show = commands.add(*group, "show", "Show a registry package's versions (yanked ones marked)", [] {
    return guarded([] {
      const reg::RegistryClient client = flags.client();
      const auto package = client.show(show_name);
      if (!package) throw CommandError("no package '" + show_name + "' in registry " + client.url());
      if (show_json) {
        std::cout << package->dump(2) << "\n";
        return kExitOk;
      }
      std::cout << show_name << " (owner " << package->value("owner", "") << ")\n";
      for (const auto& v : package->at("versions"))
        std::cout << "  " << std::left << std::setw(12) << v.value("version", "")
                  << (v.value("yanked", false) ? "yanked" : "") << "\n";
      return kExitOk;
    });
  });
  show->add_option("NAME", show_name, "Package name")->required();
  flags.add_to(*show);
  show->add_flag("--json", show_json, "Print JSON");

  static std::string install_spec;
  auto* install = commands.add(*group, "install", "Install NAME[@RANGE] (and its dependencies) or a local .kpkg", [] {
    return guarded([] {
      const auto dirs = reg::InstallDirs::user_default();
      const auto trusted = reg::load_trusted_keys(reg::trusted_keys_dir());
      if (trusted.empty())
        throw CommandError("no trusted keys in " + reg::trusted_keys_dir().string() +
                           "; add a publisher's public key with 'kiln keys trust FILE'");
      if (install_spec.size() > 5 && install_spec.substr(install_spec.size() - 5) == reg::kPackageExtension &&
          fs::exists(install_spec)) {
        print_installed(reg::install_archive(install_spec, trusted, dirs, fs::absolute(install_spec).string()),
                        "installed");
        return kExitOk;
      }
      const auto [name, range] = split_spec(install_spec);
      const reg::RegistryClient client = flags.client();
      const auto plan = reg::resolve(client, name, range, dirs);
      for (const auto& p : reg::install_plan(client, plan, trusted, dirs)) print_installed(p, "installed");
      return kExitOk;
    });
  });
  install->add_option("SPEC", install_spec, "NAME, NAME@RANGE (e.g. acme.scaler@^1.2) or a .kpkg file")->required();
  flags.add_to(*install);

  static bool list_installed_flag = false, list_json = false;
  auto* list = commands.add(*group, "list", "List the packages installed from registries", [] {
    return guarded([] {
      const auto installed = reg::list_installed(reg::InstallDirs::user_default());
      if (list_json) {
        Json out = Json::array();
        for (const auto& p : installed)
          out.push_back(Json{{"name", p.manifest.name},
                             {"version", p.manifest.version.str()},
                             {"components", p.manifest.components},
                             {"library", p.library.string()},
                             {"components_dir", p.components_dir.string()},
                             {"signer", p.signer},
                             {"source", p.source}});
        std::cout << out.dump(2) << "\n";
        return kExitOk;
      }
      if (installed.empty()) std::cout << "no packages installed\n";
      for (const auto& p : installed)
        std::cout << std::left << std::setw(24) << p.manifest.name << std::setw(10) << p.manifest.version.str()
                  << installed_files(p) << "\n";
      return kExitOk;
    });
  });
  list->add_flag("--installed", list_installed_flag, "List installed packages (the default)");
  list->add_flag("--json", list_json, "Print JSON");

  static std::string remove_name;
  auto* remove = commands.add(*group, "remove", "Remove an installed package", [] {
    return guarded([] {
      if (!reg::remove_installed(reg::InstallDirs::user_default(), remove_name))
        throw CommandError("package '" + remove_name + "' is not installed; 'kiln plugin list' shows what is");
      std::cout << "removed " << remove_name << "\n";
      return kExitOk;
    });
  });
  remove->add_option("NAME", remove_name, "Package name")->required();

  static std::string yank_spec;
  static bool undo = false;
  auto* yank = commands.add(*group, "yank", "Yank NAME@VERSION: ranges skip it, exact pins still install it", [] {
    return guarded([] {
      const auto [name, version] = split_spec(yank_spec);
      if (version.empty()) throw CommandError("give the version to yank: NAME@VERSION", kExitUsage);
      const std::string token = reg::registry_token();
      if (token.empty()) throw CommandError("yanking needs a token: set KILN_REGISTRY_TOKEN");
      flags.client().yank(name, version, token, !undo);
      std::cout << (undo ? "unyanked " : "yanked ") << name << " " << version << "\n";
      return kExitOk;
    });
  });
  yank->add_option("SPEC", yank_spec, "NAME@VERSION")->required();
  yank->add_flag("--undo", undo, "Unyank");
  flags.add_to(*yank);

  static std::string new_name, new_kind = "generic", new_dir;
  auto* scaffold = commands.add(*group, "new", "Create a standalone plugin project that builds against the SDK", [] {
    return guarded([] {
      const fs::path dir = reg::scaffold_plugin(new_name, new_kind, fs::path(new_dir.empty() ? new_name : new_dir));
      std::cout << "created " << dir.string() << "; see " << (dir / "README.md").string() << "\n";
      return kExitOk;
    });
  });
  scaffold->add_option("NAME", new_name, "Plugin name, e.g. acme.scaler")->required();
  scaffold->add_option("--kind", new_kind, "Component kind: data, tune, train, evaluate, serve or generic");
  scaffold->add_option("--dir", new_dir, "Project directory (default: NAME)");
}

void add_registry_server_commands(CLI::App& app, Commands& commands) {
  CLI::App* group = Commands::add_group(app, "registry", "Run a plugin registry server and manage its tokens");
  static std::string root, host_name = "127.0.0.1";
  static uint16_t port = 8470;
  static uint64_t max_upload_mb = 64;
  static std::string tls_cert, tls_key;
  static int header_timeout = reg::RegistryServer::Options{}.header_timeout_seconds;
  static int body_timeout = reg::RegistryServer::Options{}.body_timeout_seconds;
  static unsigned threads = reg::RegistryServer::Options{}.threads;
  auto* serve = commands.add(*group, "serve", "Serve a registry over HTTP until interrupted", [] {
    return guarded([] {
      // Block the stop signals before the server's threads start, then wait for one.
      sigset_t stop;
      sigemptyset(&stop);
      sigaddset(&stop, SIGINT);
      sigaddset(&stop, SIGTERM);
      pthread_sigmask(SIG_BLOCK, &stop, nullptr);
      reg::RegistryServer::Options options;
      options.root = root;
      options.host = host_name;
      options.port = port;
      options.max_upload_bytes = max_upload_mb << 20;
      options.tls_cert_file = tls_cert;
      options.tls_key_file = tls_key;
      options.header_timeout_seconds = header_timeout;
      options.body_timeout_seconds = body_timeout;
      options.threads = threads;
      reg::RegistryServer server(options);
      std::cout << "registry serving " << fs::absolute(root).string() << " at " << server.url() << std::endl;
      int signal_number = 0;
      sigwait(&stop, &signal_number);
      server.stop();
      std::cout << "registry stopped\n";
      return kExitOk;
    });
  });
  serve->add_option("--root", root, "Registry directory (packages, index.db, secret)")->required();
  serve->add_option("--host", host_name, "Address to listen on");
  serve->add_option("--port", port, "Port (0: any free port)");
  serve->add_option("--max-upload-mb", max_upload_mb, "Largest accepted package, in MiB");
  serve->add_option("--tls-cert", tls_cert, "Serve HTTPS with this PEM certificate (chain); needs --tls-key");
  serve->add_option("--tls-key", tls_key, "The PEM private key of --tls-cert");
  serve->add_option("--header-timeout", header_timeout, "Seconds a connection has for its request line and headers")
      ->check(CLI::PositiveNumber);
  serve->add_option("--body-timeout", body_timeout, "Seconds a request then has for its body and the answer")
      ->check(CLI::PositiveNumber);
  serve->add_option("--threads", threads, "Requests served at once (more wait in a queue of 64)")
      ->check(CLI::Range(1u, 1024u));

  CLI::App* token = Commands::add_group(*group, "token", "Publishing tokens");
  static std::string owner;
  static uint32_t valid_days = 365;
  auto* create = commands.add(*token, "create", "Print a publishing token for OWNER", [] {
    return guarded([] {
      std::cout << reg::RegistryStore(root).create_token(owner, static_cast<int64_t>(valid_days) * 86400) << "\n";
      return kExitOk;
    });
  });
  create->add_option("--root", root, "Registry directory")->required();
  create->add_option("--owner", owner, "Who the token publishes as")->required();
  create->add_option("--days", valid_days, "Days until the token expires (0: never)")->check(CLI::NonNegativeNumber);
}

}  // namespace

void add_registry_commands(CLI::App& app, Commands& commands) {
  add_keys_commands(app, commands);
  add_plugin_commands(app, commands);
  add_registry_server_commands(app, commands);
}

}  // namespace kiln::cli
