// SQLite through Poco::Data. The schema is a list of migrations applied in
// order, each in the transaction that also bumps schema_version, so a crash
// mid-migration leaves the previous version intact.
#include <kiln/host/metadata_db.hpp>

#include <Poco/Data/RecordSet.h>
#include <Poco/Data/SQLite/Connector.h>
#include <Poco/Data/SQLite/Utility.h>
#include <Poco/Data/Session.h>
#include <Poco/Data/Statement.h>
#include <sqlite3.h>

#include <mutex>
#include <string_view>
#include <unordered_map>

namespace kiln::host {
namespace fs = std::filesystem;
using namespace Poco::Data::Keywords;

namespace {

// Migration N (1-based) brings the schema from version N-1 to N. Append only.
const std::vector<std::vector<const char*>>& migrations() {
  static const std::vector<std::vector<const char*>> all{{
      "CREATE TABLE runs (id TEXT PRIMARY KEY, pipeline TEXT NOT NULL, spec_file TEXT NOT NULL,"
      " spec_text TEXT NOT NULL, parameters TEXT NOT NULL, executor TEXT NOT NULL, run_dir TEXT NOT NULL,"
      " status TEXT NOT NULL, message TEXT, started_at TEXT NOT NULL, finished_at TEXT, duration_seconds REAL,"
      " host TEXT NOT NULL, pid INTEGER NOT NULL, boot_id TEXT NOT NULL, process_start TEXT NOT NULL,"
      " heartbeat_at TEXT, options TEXT NOT NULL DEFAULT '{}')",
      // One row per step, and per loop item ("train[2]"): its outcome.
      "CREATE TABLE steps (run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE, unit TEXT NOT NULL,"
      " step TEXT NOT NULL, item_index INTEGER NOT NULL, status TEXT NOT NULL, message TEXT,"
      " component TEXT, parameters TEXT, outputs TEXT, artifacts TEXT, metadata TEXT, cache_key TEXT, cache_status "
      "TEXT,"
      " cache_reason TEXT, PRIMARY KEY (run_id, unit))",
      "CREATE TABLE attempts (run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE, unit TEXT NOT NULL,"
      " attempt INTEGER NOT NULL, status TEXT NOT NULL, executor TEXT NOT NULL, dir TEXT NOT NULL,"
      " started_at TEXT NOT NULL, finished_at TEXT, duration_seconds REAL, failure TEXT, message TEXT,"
      " pid INTEGER, pgid INTEGER, cache_key TEXT, cache_hit INTEGER NOT NULL DEFAULT 0,"
      " PRIMARY KEY (run_id, unit, attempt))",
      "CREATE TABLE metrics (run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE, unit TEXT NOT NULL,"
      " name TEXT NOT NULL, step INTEGER NOT NULL, value REAL NOT NULL, time REAL NOT NULL)",
      "CREATE INDEX metrics_by_run ON metrics (run_id, unit, name)",
      "CREATE TABLE artifacts (digest TEXT PRIMARY KEY, type TEXT NOT NULL, size INTEGER NOT NULL,"
      " producer_run TEXT NOT NULL, producer_unit TEXT NOT NULL, producer_output TEXT NOT NULL,"
      " description TEXT, metadata TEXT, created_at TEXT NOT NULL)",
      // Which step read (role 'input') or wrote ('output') which artifact.
      "CREATE TABLE lineage (run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE, unit TEXT NOT NULL,"
      " role TEXT NOT NULL, name TEXT NOT NULL, digest TEXT NOT NULL, PRIMARY KEY (run_id, unit, role, name))",
      "CREATE INDEX lineage_by_digest ON lineage (digest, role)",
      // parts: the digest of each named part of the key, for "why did it miss".
      "CREATE TABLE cache_entries (key TEXT PRIMARY KEY, step TEXT NOT NULL, component TEXT NOT NULL,"
      " parts TEXT NOT NULL, outputs TEXT NOT NULL, artifacts TEXT NOT NULL, metadata TEXT NOT NULL,"
      " run_id TEXT NOT NULL, unit TEXT NOT NULL, created_at TEXT NOT NULL)",
      "CREATE INDEX cache_by_step ON cache_entries (step, component, created_at)",
  }, {
      // kiln ui's runs list: a page in any of these orders walks an index and
      // stops (ORDER BY ... LIMIT), and a status or pipeline filter does not
      // scan every run (host/lib/store/run_query.cpp).
      "CREATE INDEX runs_by_started ON runs (started_at, id)",
      "CREATE INDEX runs_by_finished ON runs (finished_at, id)",
      "CREATE INDEX runs_by_duration ON runs (duration_seconds, id)",
      "CREATE INDEX runs_by_pipeline ON runs (pipeline, started_at, id)",
      "CREATE INDEX runs_by_status ON runs (status, started_at, id)",
  }};
  return all;
}

void register_connector() {
  static std::once_flag once;
  std::call_once(once, [] { Poco::Data::SQLite::Connector::registerConnector(); });
}

Json value_of(const Poco::Dynamic::Var& v) {
  if (v.isEmpty()) return nullptr;
  if (v.isInteger()) return v.convert<Poco::Int64>();
  if (v.isNumeric()) return v.convert<double>();
  return v.convert<std::string>();
}

}  // namespace

struct MetadataDb::Impl {
  explicit Impl(const fs::path& file) : session("SQLite", file.string()) {}
  ~Impl() {
    for (const auto& [sql, statement] : statements) sqlite3_finalize(statement);
  }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  // execute()'s statements, compiled once (parsing a statement cost more than
  // running it: a run writes the same few statements for each step). Null
  // for SQL that is not exactly one statement: Poco runs that.
  sqlite3_stmt* prepared(const std::string& sql) {
    const auto found = statements.find(sql);
    if (found != statements.end()) return found->second;
    if (statements.size() >= kMaxStatements) return nullptr;
    sqlite3_stmt* statement = nullptr;
    const char* tail = nullptr;
    if (sqlite3_prepare_v3(db(), sql.c_str(), static_cast<int>(sql.size() + 1), SQLITE_PREPARE_PERSISTENT, &statement,
                           &tail) != SQLITE_OK ||
        statement == nullptr || std::string_view(tail).find_first_not_of(" \t\r\n;") != std::string_view::npos) {
      sqlite3_finalize(statement);
      return nullptr;
    }
    statements.emplace(sql, statement);
    return statement;
  }
  sqlite3* db() { return Poco::Data::SQLite::Utility::dbHandle(session); }

  static constexpr size_t kMaxStatements = 256;  // the SQL texts are the code's own, but bounded anyway
  Poco::Data::Session session;
  std::unordered_map<std::string, sqlite3_stmt*> statements;
};

MetadataDb::MetadataDb(const fs::path& file) : file_(file) {
  register_connector();
  if (file.has_parent_path()) fs::create_directories(file.parent_path());
  impl_ = std::make_unique<Impl>(file);
  // Poco turns SQLITE_BUSY into an exception; the busy timeout makes SQLite
  // wait for the other writer first.
  impl_->session.setConnectionTimeout(10);  // seconds
  query("PRAGMA busy_timeout = 10000");
  // WAL: readers (kiln runs list) never block the writer. synchronous is
  // NORMAL by default (a commit survives the process dying) and FULL for
  // the transactions that must survive power loss (see transaction()).
  query("PRAGMA journal_mode = WAL");
  execute("PRAGMA synchronous = NORMAL");
  execute("PRAGMA foreign_keys = ON");
  transaction([&] {
    execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
    const auto row = query_one("SELECT MAX(version) AS v FROM schema_version");
    int version = row ? static_cast<int>(integer((*row)["v"])) : 0;
    const int latest = latest_schema_version();
    if (version > latest)
      throw std::runtime_error(file.string() + " has schema version " + std::to_string(version) +
                               ", newer than this kiln understands (" + std::to_string(latest) + ")");
    for (; version < latest; ++version) {
      for (const char* sql : migrations()[static_cast<size_t>(version)]) execute(sql);
      execute("INSERT INTO schema_version (version) VALUES (?)", {version + 1});
    }
  });
}

MetadataDb::~MetadataDb() = default;

int MetadataDb::latest_schema_version() {
  return static_cast<int>(migrations().size());
}

int MetadataDb::schema_version() {
  const auto row = query_one("SELECT MAX(version) AS v FROM schema_version");
  return row ? static_cast<int>(integer((*row)["v"])) : 0;
}

int64_t MetadataDb::integer(const Json& value) {
  if (value.is_number()) return value.get<int64_t>();
  if (value.is_string() && !value.get<std::string>().empty()) return std::stoll(value.get<std::string>());
  return 0;
}

void MetadataDb::transaction(const std::function<void()>& work, Durability durability) {
  if (depth_ > 0) {
    work();
    return;
  }
  // In WAL mode a FULL commit fsyncs the log, and with it every earlier commit.
  const bool full = durability == Durability::power_loss;
  if (full) execute("PRAGMA synchronous = FULL");
  // BEGIN IMMEDIATE takes the write lock now, waiting up to busy_timeout; a
  // deferred BEGIN that later upgrades could fail with SQLITE_BUSY at once.
  execute("BEGIN IMMEDIATE");
  ++depth_;
  try {
    work();
    --depth_;
    execute("COMMIT");
    if (full) execute("PRAGMA synchronous = NORMAL");
  } catch (...) {
    depth_ = 0;
    try {
      execute("ROLLBACK");
      if (full) execute("PRAGMA synchronous = NORMAL");  // not allowed inside a transaction
    } catch (const std::exception&) {  // the transaction may already be gone
    }
    throw;
  }
}

namespace {

void add_bindings(Poco::Data::Statement& statement, const std::vector<Json>& params) {
  for (const auto& p : params) {
    if (p.is_null())
      statement, bind(Poco::Data::Keywords::null);
    else if (p.is_boolean())
      statement, bind(static_cast<Poco::Int64>(p.get<bool>()));
    else if (p.is_number_integer())
      statement, bind(p.get<Poco::Int64>());
    else if (p.is_number())
      statement, bind(p.get<double>());
    else if (p.is_string())
      statement, bind(p.get<std::string>());
    else
      statement, bind(p.dump());
  }
}

}  // namespace

void MetadataDb::execute(const std::string& sql, const std::vector<Json>& params) {
  if (sqlite3_stmt* cached = impl_->prepared(sql)) {
    int rc = SQLITE_OK;
    for (size_t i = 0; i < params.size() && rc == SQLITE_OK; ++i) {
      const Json& p = params[i];
      const int at = static_cast<int>(i) + 1;
      if (p.is_null()) {
        rc = sqlite3_bind_null(cached, at);
      } else if (p.is_boolean()) {
        rc = sqlite3_bind_int64(cached, at, p.get<bool>() ? 1 : 0);
      } else if (p.is_number_integer()) {
        rc = sqlite3_bind_int64(cached, at, p.get<sqlite3_int64>());
      } else if (p.is_number()) {
        rc = sqlite3_bind_double(cached, at, p.get<double>());
      } else {
        const std::string text = p.is_string() ? p.get<std::string>() : p.dump();
        rc = sqlite3_bind_text64(cached, at, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
      }
    }
    if (rc == SQLITE_OK)
      while ((rc = sqlite3_step(cached)) == SQLITE_ROW) {
      }
    const std::string error = rc == SQLITE_DONE ? "" : sqlite3_errmsg(impl_->db());
    sqlite3_reset(cached);
    sqlite3_clear_bindings(cached);
    if (rc != SQLITE_DONE) Poco::Data::SQLite::Utility::throwException(impl_->db(), rc, error + " (" + sql + ")");
    return;
  }
  Poco::Data::Statement statement(impl_->session);
  statement << sql;
  add_bindings(statement, params);
  statement.execute();
}

std::vector<Json> MetadataDb::query(const std::string& sql, const std::vector<Json>& params) {
  Poco::Data::Statement statement(impl_->session);
  statement << sql;
  add_bindings(statement, params);
  statement.execute();
  Poco::Data::RecordSet rows(statement);
  std::vector<Json> out;
  const size_t columns = rows.columnCount();
  for (size_t r = 0; r < rows.rowCount(); ++r) {
    Json row = Json::object();
    for (size_t c = 0; c < columns; ++c) row[rows.columnName(c)] = value_of(rows.value(c, r));
    out.push_back(std::move(row));
  }
  return out;
}

std::optional<Json> MetadataDb::query_one(const std::string& sql, const std::vector<Json>& params) {
  auto rows = query(sql, params);
  if (rows.empty()) return std::nullopt;
  return std::move(rows.front());
}

}  // namespace kiln::host
