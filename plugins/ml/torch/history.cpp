#include "history.hpp"

#include <nlohmann/json.hpp>
#include <sstream>

#include "safetensors.hpp"

namespace kiln::ml {
using nlohmann::json;

namespace {

json row_json(const History& h, const EpochRow& r) {
  json j = {{"epoch", r.epoch}, {"train_loss", r.train_loss}, {"train_" + h.metric, r.train_metric}};
  j["val_loss"] = r.val_loss ? json(*r.val_loss) : json(nullptr);
  j["val_" + h.metric] = r.val_metric ? json(*r.val_metric) : json(nullptr);
  j["lr"] = r.lr;
  j["seconds"] = r.seconds;
  return j;
}

std::optional<double> optional_number(const json& j, const std::string& key) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  return j[key].get<double>();
}

std::string cell(const std::optional<double>& value) {
  if (!value) return "";
  std::ostringstream out;
  out.precision(9);
  out << *value;
  return out.str();
}

}  // namespace

std::string history_to_json(const History& h) {
  json rows = json::array();
  for (const auto& r : h.rows) rows.push_back(row_json(h, r));
  const json j = {{"format", kHistoryFormat}, {"metric", h.metric}, {"best_epoch", h.best_epoch}, {"epochs", rows}};
  return j.dump(2) + "\n";
}

History history_from_json(const std::string& text) {
  const json j = json::parse(text);
  History h;
  h.metric = j.at("metric").get<std::string>();
  h.best_epoch = j.at("best_epoch").get<int64_t>();
  for (const auto& r : j.at("epochs")) {
    EpochRow row;
    row.epoch = r.at("epoch").get<int64_t>();
    row.train_loss = r.at("train_loss").get<double>();
    row.train_metric = r.at("train_" + h.metric).get<double>();
    row.val_loss = optional_number(r, "val_loss");
    row.val_metric = optional_number(r, "val_" + h.metric);
    row.lr = r.at("lr").get<double>();
    row.seconds = r.at("seconds").get<double>();
    h.rows.push_back(row);
  }
  return h;
}

std::string history_to_csv(const History& h) {
  std::string out = "epoch,train_loss,train_" + h.metric + ",val_loss,val_" + h.metric + ",lr,seconds\n";
  for (const auto& r : h.rows) {
    out += std::to_string(r.epoch) + "," + cell(r.train_loss) + "," + cell(r.train_metric) + "," + cell(r.val_loss) +
           "," + cell(r.val_metric) + "," + cell(r.lr) + "," + cell(r.seconds) + "\n";
  }
  return out;
}

void write_history(const History& h, const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  write_text_atomic(dir / "history.json", history_to_json(h));
  write_text_atomic(dir / "history.csv", history_to_csv(h));
}

}  // namespace kiln::ml
