// `kiln artifacts list/show/export`, `kiln lineage`, `kiln gc` and `kiln fsck`:
// the workspace's artifact store and what the metadata database says about it.
#include <kiln/host/artifact_store.hpp>
#include <kiln/host/fsck.hpp>
#include <kiln/host/gc.hpp>
#include <kiln/host/run_store.hpp>
#include <kiln/host/store.hpp>

#include <iomanip>
#include <iostream>
#include <set>

#include "cli.hpp"

namespace kiln::cli {
namespace {

using host::Json;
namespace fs = std::filesystem;

struct StoreOptions {
  std::string workdir;
  std::string artifact;
  std::string destination;
  bool json = false;
  bool remove = false;
  bool all = false;
};

Json parse_text(const Json& column) {
  return column.is_string() && !column.get<std::string>().empty() ? Json::parse(column.get<std::string>())
                                                                  : Json::object();
}

// A digest, a unique prefix of one, or RUN/STEP/OUTPUT (STEP may be "name[2]").
std::string resolve_artifact(host::Store& store, const std::string& ref) {
  const auto first = ref.find('/'), last = ref.rfind('/');
  if (first != std::string::npos && first != last) {
    std::string run;
    try {
      run = host::find_run(store.workspace, ref.substr(0, first)).filename().string();
    } catch (const std::runtime_error& e) {
      throw CommandError(e.what());
    }
    const std::string unit = ref.substr(first + 1, last - first - 1), output = ref.substr(last + 1);
    const auto row = store.db.query_one("SELECT artifacts FROM steps WHERE run_id=? AND unit=?", {run, unit});
    if (!row) throw CommandError("run " + run + " has no finished step '" + unit + "'");
    const Json artifacts = parse_text((*row)["artifacts"]);
    if (!artifacts.contains(output))
      throw CommandError("step '" + unit + "' of run " + run + " has no output '" + output + "'");
    return artifacts[output].get<std::string>();
  }
  const auto rows = store.db.query("SELECT digest FROM artifacts WHERE digest LIKE ? LIMIT 2", {ref + "%"});
  if (rows.size() == 1) return rows.front()["digest"].get<std::string>();
  if (rows.empty())
    throw CommandError("no artifact '" + ref + "' (give a digest, a prefix of one, or RUN/STEP/OUTPUT)");
  throw CommandError("'" + ref + "' matches several artifacts: give more of the digest");
}

int list_artifacts(const StoreOptions& o) {
  host::Store store(host::workspace_dir(o.workdir));
  const auto rows = store.db.query(
      "SELECT digest, type, size, producer_run, producer_unit, producer_output, created_at FROM artifacts ORDER BY "
      "created_at, digest");
  if (o.json) {
    std::cout << Json(rows).dump(2) << "\n";
    return kExitOk;
  }
  for (const auto& r : rows)
    std::cout << r["digest"].get<std::string>().substr(0, 16) << "  " << std::left << std::setw(10)
              << r["type"].get<std::string>() << std::right << std::setw(10) << r["size"].get<int64_t>() << "  "
              << r["producer_run"].get<std::string>() << "/" << r["producer_unit"].get<std::string>() << "/"
              << r["producer_output"].get<std::string>() << "\n";
  return kExitOk;
}

int show_artifact(const StoreOptions& o) {
  host::Store store(host::workspace_dir(o.workdir));
  const std::string digest = resolve_artifact(store, o.artifact);
  Json out = store.db.query_one("SELECT * FROM artifacts WHERE digest=?", {digest}).value_or(Json{{"digest", digest}});
  out["metadata"] = parse_text(out.value("metadata", Json(nullptr)));
  out["path"] = store.artifacts.path_of(digest).string();
  out["present"] = store.artifacts.contains(digest);
  out["used_by"] =
      store.db.query("SELECT run_id, unit, role, name FROM lineage WHERE digest=? ORDER BY run_id", {digest});
  std::cout << out.dump(2) << "\n";
  return kExitOk;
}

int export_artifact(const StoreOptions& o) {
  host::Store store(host::workspace_dir(o.workdir));
  const std::string digest = resolve_artifact(store, o.artifact);
  if (fs::exists(o.destination)) throw CommandError(o.destination + " already exists");
  store.artifacts.export_to(digest, o.destination);
  std::cout << "exported " << digest << " to " << o.destination << "\n";
  return kExitOk;
}

// Prints how `digest` came to be, then the same for each input, recursively.
void print_lineage(host::Store& store, const std::string& digest, const std::string& indent,
                   std::set<std::string>& seen, Json& out) {
  const auto artifact = store.db.query_one("SELECT * FROM artifacts WHERE digest=?", {digest});
  out = Json{{"digest", digest}};
  std::cout << indent << digest.substr(0, 16);
  if (!artifact) {
    std::cout << "  (not produced by a recorded step: a source)\n";
    return;
  }
  const std::string run = (*artifact)["producer_run"], unit = (*artifact)["producer_unit"];
  std::cout << "  " << (*artifact)["type"].get<std::string>() << ", output '"
            << (*artifact)["producer_output"].get<std::string>() << "' of step " << unit << " in run " << run << "\n";
  out["producer"] = {{"run", run}, {"step", unit}, {"output", (*artifact)["producer_output"]}};
  const auto step =
      store.db.query_one("SELECT component, parameters FROM steps WHERE run_id=? AND unit=?", {run, unit});
  if (step) {
    out["component"] = (*step)["component"];
    out["parameters"] = parse_text((*step)["parameters"]);
    std::cout << indent << "  component " << (*step)["component"].get<std::string>() << ", parameters "
              << out["parameters"].dump() << "\n";
  }
  if (!seen.insert(digest).second) return;  // shared ancestry: printed above
  out["inputs"] = Json::object();
  for (const auto& input : store.db.query(
           "SELECT name, digest FROM lineage WHERE run_id=? AND unit=? AND role='input' ORDER BY name", {run, unit})) {
    std::cout << indent << "  input '" << input["name"].get<std::string>() << "':\n";
    print_lineage(store, input["digest"], indent + "    ", seen, out["inputs"][input["name"].get<std::string>()]);
  }
}

int lineage(const StoreOptions& o) {
  host::Store store(host::workspace_dir(o.workdir));
  std::set<std::string> seen;
  Json out;
  if (o.json) std::cout.setstate(std::ios::failbit);  // the tree goes to JSON instead
  print_lineage(store, resolve_artifact(store, o.artifact), "", seen, out);
  if (o.json) {
    std::cout.clear();
    std::cout << out.dump(2) << "\n";
  }
  return kExitOk;
}

// Stored artifacts that no run read or wrote, plus leftovers of copies (host/gc.hpp).
int gc(const StoreOptions& o) {
  host::Store store(host::workspace_dir(o.workdir));
  host::GcOptions options;
  options.remove = o.remove;
  options.include_recent = o.all;
  const auto report = host::collect_garbage(store, options);
  for (const auto& item : report.items)
    std::cout << (report.removed ? "removed " : "would remove ") << item.name << "\n";
  std::cout << report.items.size()
            << (report.removed ? " removed" : " unreferenced (dry run: add --delete to remove them)") << "\n";
  if (report.kept_recent > 0)
    std::cout << report.kept_recent << " unreferenced but stored in the last hour: kept (--all to include them)\n";
  return kExitOk;
}

int fsck(const StoreOptions& o) {
  host::Store store(host::workspace_dir(o.workdir));
  const auto report = host::check_store(store);
  for (const auto& p : report.problems) std::cout << p.message() << "\n";
  std::cout << "checked " << report.artifacts_checked
            << " artifacts: " << (report.clean() ? "all intact" : std::to_string(report.problems.size()) + " problems")
            << "\n";
  return report.clean() ? kExitOk : kExitFailure;
}

}  // namespace

void add_store_commands(CLI::App& app, Commands& commands) {
  static StoreOptions o;
  const auto workdir = [](CLI::App* c) {
    c->add_option("--workdir", o.workdir, "Workspace (default: $KILN_HOME or ./.kiln)");
  };
  CLI::App* group = Commands::add_group(app, "artifacts", "List, inspect and export stored artifacts");
  auto* list = commands.add(*group, "list", "List the stored artifacts", [] { return list_artifacts(o); });
  workdir(list);
  list->add_flag("--json", o.json, "Print JSON");
  auto* show =
      commands.add(*group, "show", "Show an artifact's record and who used it", [] { return show_artifact(o); });
  show->add_option("ARTIFACT", o.artifact, "Digest (or a prefix), or RUN/STEP/OUTPUT")->required();
  workdir(show);
  auto* exp = commands.add(*group, "export", "Copy an artifact out of the store", [] { return export_artifact(o); });
  exp->add_option("ARTIFACT", o.artifact, "Digest (or a prefix), or RUN/STEP/OUTPUT")->required();
  exp->add_option("DEST", o.destination, "A new directory to copy it to")->required();
  workdir(exp);
  auto* lin =
      commands.add(app, "lineage", "Print the chain of steps that produced an artifact", [] { return lineage(o); });
  lin->add_option("ARTIFACT", o.artifact, "Digest (or a prefix), or RUN/STEP/OUTPUT")->required();
  lin->add_flag("--json", o.json, "Print JSON");
  workdir(lin);
  auto* g =
      commands.add(app, "gc", "Remove artifacts no run references (a dry run unless --delete)", [] { return gc(o); });
  g->add_flag("--delete", o.remove, "Remove them (default: only list them)");
  g->add_flag("--all", o.all, "Include artifacts stored in the last hour (no run may be going on)");
  workdir(g);
  auto* f = commands.add(app, "fsck", "Check every stored artifact against its digest", [] { return fsck(o); });
  workdir(f);
}

}  // namespace kiln::cli
