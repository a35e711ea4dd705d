#include "checkpoint_handoff.hpp"

#include <algorithm>
#include <stdexcept>

namespace kiln::host {

namespace fs = std::filesystem;

bool is_engine_directive(const std::string& name) {
  return name.rfind("kiln.", 0) == 0;
}

const Json* pbt_directive(const UnitState& unit) {
  if (!unit.item.is_object()) return nullptr;
  const auto found = unit.item.find("kiln.pbt");
  return found == unit.item.end() || !found->is_object() ? nullptr : &*found;
}

void hand_over_checkpoint(const RunState& state, const UnitState& unit) {
  const Json* pbt = pbt_directive(unit);
  if (pbt == nullptr || !pbt->contains("from") || !(*pbt)["from"].is_number_integer()) return;
  const fs::path target = unit.dir / "checkpoint";
  if (fs::exists(target)) return;  // a retry or a resume: its own checkpoint wins
  const int from = (*pbt)["from"].get<int>();
  const UnitState* donor = nullptr;
  for (const int u : state.trial_units(unit.step, from))
    if (state.unit(u).part == unit.part) donor = &state.unit(u);
  if (donor == nullptr)
    throw std::runtime_error("population-based training: trial " + std::to_string(from) + " is unknown");
  const fs::path source = donor->dir / "checkpoint";
  std::error_code absent;
  const fs::file_status kind = fs::symlink_status(source, absent);
  if (!fs::exists(kind)) return;
  // What a trial left is copied as it is: a link stays a link (followed, it
  // could hand a host file or tree to the next trial, in another container).
  if (!fs::is_directory(kind))
    throw std::runtime_error("population-based training: " + source.string() + " is not a directory");
  const fs::path partial = unit.dir / "checkpoint.partial";
  std::error_code ec;
  fs::remove_all(partial, ec);
  fs::create_directories(unit.dir);
  fs::copy(source, partial, fs::copy_options::recursive | fs::copy_options::copy_symlinks, ec);
  if (!ec) fs::rename(partial, target, ec);
  if (ec)
    throw std::runtime_error("population-based training: cannot copy " + source.string() + " to " + target.string() +
                             ": " + ec.message());
}

void prune_pbt_checkpoints(const RunState& state, size_t step, const std::function<void()>& before_removing) {
  const auto round_of = [&](int u) -> int64_t {
    const Json* pbt = pbt_directive(state.unit(u));
    if (pbt == nullptr || !pbt->contains("round") || !(*pbt)["round"].is_number_integer()) return -1;
    return (*pbt)["round"].get<int64_t>();
  };
  int64_t latest = -1;
  for (const int u : state.step(step).units) latest = std::max(latest, round_of(u));
  // Round `latest` exists, so every trial of the rounds before it ended (a
  // round begins when the one before it has ended): only `latest` and the
  // round it starts from can still be a donor.
  bool prepared = false;
  for (const int u : state.step(step).units) {
    const int64_t round = round_of(u);
    if (round < 0 || round >= latest - 1) continue;
    const fs::path dir = state.unit(u).dir / "checkpoint";
    std::error_code ignored;
    if (!fs::exists(fs::symlink_status(dir, ignored))) continue;
    if (!prepared) before_removing();
    prepared = true;
    fs::remove_all(dir, ignored);
  }
}

}  // namespace kiln::host
