// The processes of one data-parallel attempt (`distributed: {replicas: N}`,
// docs/distributed.md) seen as one attempt: rank 0 is the attempt (its
// channel, outputs and result); ranks 1..N-1 only write logs. The group
// stops every rank as soon as one ends badly, waits until all have ended,
// and names the rank that failed first in the attempt's result.
#pragma once

#include <sys/types.h>
#include <kiln/host/executor.hpp>
#include <kiln/host/step_server.hpp>
#include <kiln/host/subprocess.hpp>

#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace kiln::host {

// A TCP port on 127.0.0.1 nobody listens on right now (bound, read, closed:
// another process could take it before rank 0 binds it; rank 0 then fails to
// start its store and the attempt fails, retried like any other).
int free_local_port();

// The directory of rank `rank` (> 0) inside its attempt's directory: its
// request, stdout.log, stderr.log and events.jsonl (its channel).
std::filesystem::path replica_dir(const std::filesystem::path& attempt_dir, int rank);

// Throws std::runtime_error when `launch` asks for replicas an executor
// named `executor` cannot run (all but the process executor, for now).
void require_one_replica(const StepLaunch& launch, const std::string& executor);

class ReplicaGroup : public AttemptObserver {
 public:
  // `observer` receives rank 0's events and, once every rank has ended, the
  // attempt's one result.
  ReplicaGroup(std::shared_ptr<AttemptObserver> observer, std::shared_ptr<StepServer> server, int world_size,
               std::filesystem::path attempt_dir);

  // Rank 0's events and result (from its AttemptState).
  void on_event(RunnerEvent event) override;
  void on_finished(AttemptResult result) override;

  // A rank's process has started / ended (any thread).
  void on_started(int rank, StepServer::ChildId child);
  void on_exit(int rank, const ExitStatus& status);
  // A rank could not be started at all (nor, when `ranks` > 1, the ranks
  // after it, which were not asked for): the group fails, the others are stopped.
  void on_start_failed(int rank, const std::string& why, int ranks = 1);

  // The engine stops the attempt (cancel: SIGTERM, kill: SIGKILL): every rank
  // gets the signal and the result stays rank 0's (cancelled, timeout).
  void stop(int signal);

 private:
  struct Failure {
    int rank = 0;
    std::string message;           // ranks > 0 (rank 0's result has its own)
    bool reported_error = false;   // the rank's plugin reported an error (else it crashed)
    bool killed_by_group = false;  // SIGKILL after the group had stopped the ranks
  };
  void fail(Failure failure);
  // The failure to name: the first crash the group did not cause (a rank
  // losing its peer reports a collective error: a consequence), else the
  // first failure the group did not cause.
  const Failure* cause(const AttemptResult& rank0) const;
  void signal_all(int signal);
  void finish_if_done(std::unique_lock<std::mutex>& lock);
  AttemptResult group_result(AttemptResult rank0) const;

  std::shared_ptr<AttemptObserver> observer_;
  std::shared_ptr<StepServer> server_;
  const int world_size_;
  const std::filesystem::path attempt_dir_;
  std::mutex mutex_;  // guards what follows
  std::vector<StepServer::ChildId> children_;
  int ended_ = 0;  // ranks that have ended (or never started)
  std::optional<AttemptResult> rank0_;
  std::vector<Failure> failures_;  // in the order the ranks ended
  bool stopping_ = false, killed_ = false, reported_ = false;
};

}  // namespace kiln::host
