#include "artifacts_api.hpp"
#include "path_inside.hpp"

#include "confined_file.hpp"

#include <kiln/host/run_store.hpp>

#include <algorithm>
#include <deque>
#include <map>
#include <optional>
#include <set>

namespace kiln::ui {

namespace fs = std::filesystem;
using host::Json;

namespace {

bool is_digest(const std::string& text) {
  return text.size() == 64 &&
         std::all_of(text.begin(), text.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// The artifact's files (regular files, relative paths in order), at most kMaxArtifactFiles; links are not followed.
Json files_of(const fs::path& dir, bool* truncated) {
  std::vector<std::pair<std::string, int64_t>> files;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_regular_file(ec) || it->is_symlink(ec)) continue;
    if (files.size() >= kMaxArtifactFiles) {
      *truncated = true;
      break;
    }
    files.emplace_back(fs::relative(it->path(), dir, ec).generic_string(), static_cast<int64_t>(it->file_size(ec)));
  }
  std::sort(files.begin(), files.end());
  Json out = Json::array();
  for (const auto& [path, size] : files) out.push_back(Json{{"path", path}, {"size", size}});
  return out;
}

std::string lower_extension(const fs::path& file) {
  std::string ext = file.extension().string();
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext;
}

// Whether `text` is UTF-8 without NUL (a cut last character is allowed).
bool looks_like_text(const std::string& text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == 0) return false;
    const size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0) return false;
    for (size_t k = 1; k < n; ++k) {
      if (i + k >= text.size()) return true;
      if ((static_cast<unsigned char>(text[i + k]) >> 6) != 2) return false;
    }
    i += n;
  }
  return true;
}

// One CSV line split into fields ("a","b,c" → a | b,c; "" inside quotes is a quote).
std::vector<std::string> csv_fields(const std::string& line, char separator) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        fields.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        fields.back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == separator) {
      fields.emplace_back();
    } else if (c != '\r') {
      fields.back() += c;
    }
  }
  return fields;
}

// A flat object of numbers (metrics.json) as rows [{name, value}]; null when it is not one.
Json metrics_table(const Json& value) {
  if (!value.is_object() || value.empty()) return nullptr;
  Json rows = Json::array();
  for (const auto& [name, v] : value.items()) {
    if (!v.is_number() && !v.is_null()) return nullptr;
    rows.push_back(Json{{"name", name}, {"value", v}});
  }
  return rows;
}

}  // namespace

ArtifactsApi::ArtifactsApi(fs::path workspace, WorkspaceDb& db)
    : workspace_(std::move(workspace)), store_(workspace_), db_(db) {}

fs::path ArtifactsApi::directory(const std::string& digest) const {
  if (!is_digest(digest))
    throw ApiError(400, "'" + digest.substr(0, 80) + "' is not an artifact digest (64 lowercase hex digits)");
  const fs::path dir = store_.path_of(digest);
  std::error_code ec;
  if (!fs::is_directory(fs::symlink_status(dir, ec)) || !path_inside(dir, store_.root()))
    throw ApiError(404, "no artifact " + digest + " in " + store_.root().string());
  return dir;
}

Json ArtifactsApi::info(const std::string& digest) {
  if (!is_digest(digest))
    throw ApiError(400, "'" + digest.substr(0, 80) + "' is not an artifact digest (64 lowercase hex digits)");
  const auto row = db_.query_one("SELECT * FROM artifacts WHERE digest=?", {digest});
  std::error_code ec;
  const bool present = fs::is_directory(fs::symlink_status(store_.path_of(digest), ec));
  if (!row && !present) throw ApiError(404, "no artifact " + digest + " in this workspace");
  Json out{{"digest", digest}, {"present", present}};
  if (row) {
    out["type"] = (*row)["type"];
    out["size"] = (*row)["size"];
    out["description"] = (*row)["description"];
    out["created_at"] = (*row)["created_at"];
    out["metadata"] = json_column((*row)["metadata"]);
    out["producer"] = Json{{"run", (*row)["producer_run"]},
                           {"step", (*row)["producer_unit"]},
                           {"output", (*row)["producer_output"]}};
  }
  out["consumers"] = db_.query(
      "SELECT run_id AS run, unit AS step, name AS input FROM lineage WHERE digest=? AND role='input' ORDER BY run_id, "
      "unit LIMIT 1000",
      {digest});
  out["outputs_of"] = db_.query(
      "SELECT run_id AS run, unit AS step, name AS output FROM lineage WHERE digest=? AND role='output' ORDER BY "
      "run_id, unit LIMIT 1000",
      {digest});
  bool truncated = false;
  out["files"] = present ? files_of(directory(digest), &truncated) : Json::array();
  if (truncated) out["files_truncated"] = true;
  return out;
}

fs::path ArtifactsApi::chosen_file(const fs::path& dir, const QueryParams& query) const {
  if (const auto name = query.text("file", 4096)) return dir / relative_path(*name, "query parameter 'file'");
  bool truncated = false;
  const Json files = files_of(dir, &truncated);
  if (files.size() == 1) return dir / files[0]["path"].get<std::string>();
  std::string some;
  for (size_t i = 0; i < files.size() && i < 5; ++i) some += (i ? ", " : "") + files[i]["path"].get<std::string>();
  throw ApiError(400, "the artifact has " + std::to_string(files.size()) + " files: name one with ?file= (" + some +
                          (files.size() > 5 ? ", ..." : "") + ")");
}

FileAnswer ArtifactsApi::content(const std::string& digest, const QueryParams& query, const std::string* range) {
  query.allow_only({"file"});
  const fs::path dir = directory(digest);
  const fs::path file = chosen_file(dir, query);
  const ConfinedFile opened(file, dir);
  return file_answer(opened, file.filename().string(), "application/octet-stream", range,
                     "kiln artifacts export copies it; or ask for ranges");
}

Json ArtifactsApi::preview(const std::string& digest, const QueryParams& query, FileAnswer* image) {
  query.allow_only({"file", "rows"});
  const int64_t rows = query.integer("rows", 20, 1, 200);
  const fs::path dir = directory(digest);
  const fs::path file = chosen_file(dir, query);
  const ConfinedFile opened(file, dir);
  const std::string ext = lower_extension(file);
  Json out{{"digest", digest}, {"file", fs::relative(file, dir).generic_string()}, {"size", opened.size()}};
  static const std::string png_signature("\x89PNG\r\n\x1a\n", 8);
  if (ext == ".png") {
    if (opened.size() > kMaxPreviewImageBytes)
      throw ApiError(413, "the image has " + std::to_string(opened.size()) + " bytes; previews show at most " +
                              std::to_string(kMaxPreviewImageBytes));
    std::string bytes = opened.read(0, opened.size());
    if (bytes.compare(0, png_signature.size(), png_signature) != 0)
      throw ApiError(415, out["file"].get<std::string>() + " is named .png but is not a PNG image");
    *image = FileAnswer{std::move(bytes), "image/png", file.filename().string(), {}, 0};
    return nullptr;
  }
  if (ext == ".json" && opened.size() <= kMaxPreviewJsonBytes) {
    const Json value = Json::parse(opened.read(0, opened.size()), nullptr, false);
    if (!value.is_discarded()) {
      if (const Json table = metrics_table(value); !table.is_null()) {
        out["kind"] = "metrics";
        out["metrics"] = table;
      } else {
        out["kind"] = "json";
        out["value"] = value;
      }
      return out;
    }
  }
  const std::string head = opened.read(0, kMaxPreviewTextBytes);
  const bool truncated = opened.size() > static_cast<int64_t>(head.size());
  if (!looks_like_text(head)) {
    out["kind"] = "binary";
    return out;
  }
  if (ext == ".csv" || ext == ".tsv") {
    const char separator = ext == ".csv" ? ',' : '\t';
    Json table = Json::array();
    size_t from = 0;
    bool more = false;
    while (from < head.size()) {
      const size_t end = head.find('\n', from);
      if (end == std::string::npos && truncated) break;  // a cut last line is not shown
      const std::string line = head.substr(from, end == std::string::npos ? std::string::npos : end - from);
      from = end == std::string::npos ? head.size() : end + 1;
      if (line.empty()) continue;
      if (static_cast<int64_t>(table.size()) > rows) {
        more = true;
        break;
      }
      table.push_back(csv_fields(line, separator));
    }
    out["kind"] = "csv";
    out["header"] = table.empty() ? Json::array() : table[0];
    if (!table.empty()) table.erase(table.begin());
    out["rows"] = std::move(table);
    out["truncated"] = more || truncated;
    return out;
  }
  out["kind"] = "text";
  out["text"] = head;
  out["truncated"] = truncated;
  return out;
}

namespace {

// A lineage graph built node by node, bounded by kMaxLineageNodes.
class Graph {
 public:
  explicit Graph(WorkspaceDb& db) : db_(db) {}

  // Adds the node; false when the graph is full (it is then marked truncated).
  // `known`: the node's row (type, size) when the caller has it; else it is looked up.
  bool artifact(const std::string& digest, const Json* known = nullptr) {
    const std::string id = "artifact:" + digest;
    if (nodes_.count(id)) return true;
    if (full()) return false;
    Json node{{"id", id}, {"kind", "artifact"}, {"digest", digest}};
    const auto row = known ? std::optional<Json>(*known)
                           : db_.query_one("SELECT type, size FROM artifacts WHERE digest=?", {digest});
    if (row) {
      node["type"] = row->value("type", Json());
      node["size"] = row->value("size", Json());
    }
    nodes_[id] = std::move(node);
    return true;
  }
  // `known`: the node's row (component, status, cache_status) when the caller has it.
  bool step(const std::string& run, const std::string& unit, const Json* known = nullptr) {
    const std::string id = step_id(run, unit);
    if (nodes_.count(id)) return true;
    if (full()) return false;
    Json node{{"id", id}, {"kind", "step"}, {"run", run}, {"step", unit}};
    const auto row =
        known ? std::optional<Json>(*known)
              : db_.query_one("SELECT component, status, cache_status FROM steps WHERE run_id=? AND unit=?", {run, unit});
    if (row) {
      node["component"] = row->value("component", Json());
      node["status"] = row->value("status", Json());
      node["cache"] = row->value("cache_status", Json());
    }
    nodes_[id] = std::move(node);
    return true;
  }
  void edge(const std::string& from, const std::string& to, const Json& name) {
    edges_.insert({from, to, name.is_string() ? name.get<std::string>() : ""});
  }
  static std::string step_id(const std::string& run, const std::string& unit) { return "step:" + run + "/" + unit; }

  Json json() const {
    Json nodes = Json::array(), edges = Json::array();
    for (const auto& [id, node] : nodes_) nodes.push_back(node);
    for (const auto& [from, to, name] : edges_) edges.push_back(Json{{"from", from}, {"to", to}, {"name", name}});
    return Json{{"nodes", std::move(nodes)}, {"edges", std::move(edges)}, {"truncated", truncated_}};
  }

 private:
  bool full() {
    if (nodes_.size() < kMaxLineageNodes) return false;
    truncated_ = true;
    return true;
  }
  WorkspaceDb& db_;
  std::map<std::string, Json> nodes_;
  std::set<std::tuple<std::string, std::string, std::string>> edges_;
  bool truncated_ = false;
};

}  // namespace

Json ArtifactsApi::lineage(const std::string& digest, const QueryParams& query) {
  query.allow_only({"direction", "depth"});
  const std::string direction = query.choice("direction", {"both", "upstream", "downstream"}, "both");
  const int64_t max_depth = query.integer("depth", 5, 1, 50);
  if (!is_digest(digest))
    throw ApiError(400, "'" + digest.substr(0, 80) + "' is not an artifact digest (64 lowercase hex digits)");
  if (!db_.query_one("SELECT digest FROM lineage WHERE digest=? LIMIT 1", {digest}) &&
      !db_.query_one("SELECT digest FROM artifacts WHERE digest=?", {digest}))
    throw ApiError(404, "no artifact " + digest + " in the workspace's lineage");
  Graph graph(db_);
  graph.artifact(digest);
  const std::string root = "artifact:" + digest;
  for (const bool up : {true, false}) {
    if ((up && direction == "downstream") || (!up && direction == "upstream")) continue;
    std::deque<std::pair<std::string, int64_t>> queue{{digest, 0}};
    std::set<std::string> seen{digest};
    while (!queue.empty()) {
      const auto [current, depth] = queue.front();
      queue.pop_front();
      if (depth >= max_depth) continue;
      const std::string from = "artifact:" + current;
      // Upstream: the steps that wrote it, and what they read. Downstream: the steps that read it, and what they wrote.
      for (const auto& s : db_.query("SELECT run_id, unit, name FROM lineage WHERE digest=? AND role=? ORDER BY run_id, "
                                     "unit LIMIT 200",
                                     {current, up ? "output" : "input"})) {
        const std::string run = s["run_id"], unit = s["unit"];
        if (!graph.step(run, unit)) break;
        const std::string step = Graph::step_id(run, unit);
        up ? graph.edge(step, from, s["name"]) : graph.edge(from, step, s["name"]);
        for (const auto& a : db_.query("SELECT name, digest FROM lineage WHERE run_id=? AND unit=? AND role=? ORDER BY "
                                       "name LIMIT 200",
                                       {run, unit, up ? "input" : "output"})) {
          const std::string next = a["digest"];
          if (!graph.artifact(next)) break;
          up ? graph.edge("artifact:" + next, step, a["name"]) : graph.edge(step, "artifact:" + next, a["name"]);
          if (seen.insert(next).second) queue.emplace_back(next, depth + 1);
        }
      }
    }
  }
  Json out = graph.json();
  out["root"] = root;
  return out;
}

Json ArtifactsApi::run_lineage(const std::string& run_id) {
  if (!host::is_run_id(run_id)) throw ApiError(400, "'" + run_id.substr(0, 64) + "' is not a run id");
  if (!db_.query_one("SELECT id FROM runs WHERE id=?", {run_id})) throw ApiError(404, "no run '" + run_id + "'");
  // Two statements for the whole run, not one per node.
  Graph graph(db_);
  for (const auto& s : db_.query("SELECT unit, component, status, cache_status FROM steps WHERE run_id=? ORDER BY unit"
                                 " LIMIT 5000",
                                 {run_id}))
    if (!graph.step(run_id, s["unit"], &s)) break;
  for (const auto& l : db_.query("SELECT l.unit, l.role, l.name, l.digest, a.type, a.size FROM lineage l LEFT JOIN"
                                 " artifacts a ON a.digest = l.digest WHERE l.run_id=? ORDER BY l.unit, l.role, l.name"
                                 " LIMIT 20000",
                                 {run_id})) {
    const std::string step = Graph::step_id(run_id, l["unit"]), artifact = "artifact:" + l["digest"].get<std::string>();
    if (!graph.step(run_id, l["unit"]) || !graph.artifact(l["digest"], &l)) break;
    l["role"] == "input" ? graph.edge(artifact, step, l["name"]) : graph.edge(step, artifact, l["name"]);
  }
  Json out = graph.json();
  out["run"] = run_id;
  return out;
}

}  // namespace kiln::ui
