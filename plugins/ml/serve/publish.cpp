// serve.publish: a Model artifact into DIR/<name>/<next version>/ of a model
// repository served by `kiln serve`. Written under a temporary name and then
// renamed, so the server's poller sees a whole version or none.
#include <unistd.h>
#include <kiln/sdk.hpp>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "safetensors.hpp"

namespace kiln::ml {
namespace {

namespace fs = std::filesystem;

struct Publish {
  static Manifest manifest() {
    return Manifest("serve.publish", "1.0.0", Kind::Serve)
        .description("Copy a Model into a `kiln serve` model repository as the model's next version (atomically)")
        .input(Port("model", "Model").description("a train.torch Model (its transform/ travels with it)"))
        .param(Param::String("repo").default_value("models").description(
            "repository directory; a relative path is taken from the directory kiln was started in ($PWD)"))
        .param(Param::String("name").description("model name in the repository"))
        .param(Param::Object("config").default_json("{}").description(
            "written as <repo>/<name>/config.json when not empty (batching, version policy; docs/serving.md)"))
        .param(Param::Bool("passed").default_value(true).description(
            "publish only when true, e.g. \"{{ steps.evaluate.outputs.passed }}\""))
        .output_parameter(Port("published", "bool"))
        .output_parameter(Port("version", "int").description("the version written, 0 when nothing was"))
        .output_parameter(Port("path", "string").description("the version's directory"));
  }

  static fs::path resolve(const std::string& repo) {
    const fs::path p(repo);
    if (p.is_absolute()) return p;
    const char* pwd = std::getenv("PWD");
    return (pwd != nullptr && fs::path(pwd).is_absolute() ? fs::path(pwd) : fs::current_path()) / p;
  }

  static bool valid_name(const std::string& name) {
    if (name.empty() || name[0] == '.' || name.size() > 128) return false;
    for (const char c : name)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') return false;
    return true;
  }

  // Copies `from` into `to`, leaving everything writable by the owner (the
  // artifact store's copies are read-only).
  static void copy_tree(const fs::path& from, const fs::path& to) {
    fs::copy(from, to, fs::copy_options::recursive);
    fs::permissions(to, fs::perms::owner_all, fs::perm_options::add);
    for (const auto& item : fs::recursive_directory_iterator(to))
      fs::permissions(item.path(),
                      item.is_directory() ? fs::perms::owner_all : fs::perms::owner_read | fs::perms::owner_write,
                      fs::perm_options::add);
  }

  void run(Context& ctx) {
    const std::string name = ctx.param_string("name");
    if (!valid_name(name))
      throw Error("name '" + name + "' must be letters, digits, '_', '-' or '.'", KILN_ERROR_INVALID_ARGUMENT);
    if (!ctx.param_bool("passed")) {
      ctx.warning("not published: the model did not pass (parameter passed is false)");
      ctx.set_output("published", false);
      ctx.set_output("version", int64_t{0});
      ctx.set_output("path", std::string());
      return;
    }
    const fs::path model = ctx.input_path("model");
    if (!fs::exists(model / "model.json")) throw Error("input 'model' has no model.json", KILN_ERROR_INVALID_ARGUMENT);
    const fs::path dir = resolve(ctx.param_string("repo")) / name;
    fs::create_directories(dir);
    const auto config = nlohmann::json::parse(ctx.param_json("config"));
    if (!config.is_object()) throw Error("config must be an object", KILN_ERROR_INVALID_ARGUMENT);
    if (!config.empty()) write_text_atomic(dir / "config.json", config.dump(2) + "\n");
    const fs::path staging = dir / (".publish-" + std::to_string(::getpid()));
    fs::remove_all(staging);
    copy_tree(model, staging);
    sync_tree(staging);  // outside the store: nobody else makes the version durable
    for (int attempt = 0; attempt < 100; ++attempt) {
      int64_t next = 1;
      for (const auto& item : fs::directory_iterator(dir)) {
        const auto v = item.path().filename().string();
        if (item.is_directory() && !v.empty() && v.find_first_not_of("0123456789") == std::string::npos &&
            v.size() < 18)
          next = std::max<int64_t>(next, std::stoll(v) + 1);
      }
      const fs::path target = dir / std::to_string(next);
      std::error_code ec;
      fs::rename(staging, target, ec);  // fails when another publisher took `next` first
      if (!ec) {
        if (!config.empty()) sync_path(dir / "config.json");
        sync_path(dir);  // the new version's name, config.json's
        ctx.info("published " + name + " version " + std::to_string(next) + " at " + target.string());
        ctx.set_output("published", true);
        ctx.set_output("version", next);
        ctx.set_output("path", target.string());
        return;
      }
    }
    fs::remove_all(staging);
    throw Error("could not claim a new version directory under " + dir.string(), KILN_ERROR_IO);
  }
};

}  // namespace
}  // namespace kiln::ml

KILN_PLUGIN(kiln::ml::Publish)
