// A data-parallel attempt's processes as one attempt: see replica_group.hpp.
#include "replica_group.hpp"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>
#include <kiln/host/runner_event.hpp>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <system_error>

namespace kiln::host {
namespace fs = std::filesystem;

namespace {

// The error a rank's plugin reported, from the last lines of its channel
// file (read from its end, at most 64 KiB: the file is the step's to fill).
std::optional<std::string> reported_error(const fs::path& events) {
  constexpr std::streamoff kTail = 64 * 1024;
  std::ifstream in(events, std::ios::binary);
  if (!in) return std::nullopt;
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  in.seekg(std::max<std::streamoff>(0, size - kTail));
  const std::string tail((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::optional<std::string> error;
  size_t start = 0;
  while (start < tail.size()) {
    const size_t end = std::min(tail.find('\n', start), tail.size());
    const DecodedLine line = decode(std::string_view(tail).substr(start, end - start));
    if (line.ok())
      if (const auto* result = std::get_if<ResultEvent>(&*line.event); result && !result->ok) error = result->message;
    start = end + 1;
  }
  return error;
}

}  // namespace

int free_local_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "socket");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
  const int error = errno;
  ::close(fd);
  if (!ok) throw std::system_error(error, std::generic_category(), "cannot find a free port for the rendezvous");
  return ntohs(address.sin_port);
}

fs::path replica_dir(const fs::path& attempt_dir, int rank) {
  return attempt_dir / ("rank-" + std::to_string(rank));
}

void require_one_replica(const StepLaunch& launch, const std::string& executor) {
  if (launch.replicas > 1)
    throw std::runtime_error("step '" + launch.step + "' asks for " + std::to_string(launch.replicas) +
                             " replicas (distributed): the " + executor +
                             " executor runs one process per step; use the process executor");
}

ReplicaGroup::ReplicaGroup(std::shared_ptr<AttemptObserver> observer, std::shared_ptr<StepServer> server,
                           int world_size, fs::path attempt_dir)
    : observer_(std::move(observer)),
      server_(std::move(server)),
      world_size_(world_size),
      attempt_dir_(std::move(attempt_dir)) {}

void ReplicaGroup::on_event(RunnerEvent event) {
  observer_->on_event(std::move(event));
}

void ReplicaGroup::on_finished(AttemptResult result) {
  std::unique_lock<std::mutex> lock(mutex_);
  rank0_ = std::move(result);
  finish_if_done(lock);
}

void ReplicaGroup::on_started(int rank, StepServer::ChildId child) {
  std::unique_lock<std::mutex> lock(mutex_);
  children_.push_back(child);
  const bool late = killed_ || stopping_;  // the group failed while this one started
  lock.unlock();
  if (late) server_->signal(child, SIGKILL);
  (void)rank;
}

void ReplicaGroup::on_exit(int rank, const ExitStatus& status) {
  if (!status.success()) {
    Failure failure;
    failure.rank = rank;
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      failure.killed_by_group = killed_ && status.signal == SIGKILL;
    }
    if (rank > 0) {  // rank 0's own result says what happened to it
      const auto error = reported_error(replica_dir(attempt_dir_, rank) / "events.jsonl");
      failure.reported_error = error.has_value();
      const std::string how = status.code == -1 && status.signal == 0 ? std::string("was lost (the step server died)")
                              : status.signal != 0                    ? "was " + status.describe()
                                                                      : status.describe();
      failure.message = "rank " + std::to_string(rank) + " of " + std::to_string(world_size_) + " " + how +
                        (error ? ": " + *error : std::string()) +
                        " (its logs: " + (attempt_dir_.filename() / replica_dir({}, rank) / "stderr.log").string() +
                        ")";
    }
    fail(std::move(failure));
  }
  std::unique_lock<std::mutex> lock(mutex_);
  ++ended_;
  finish_if_done(lock);
}

void ReplicaGroup::on_start_failed(int rank, const std::string& why, int ranks) {
  Failure failure;
  failure.rank = rank;
  failure.message = "rank " + std::to_string(rank) + " of " + std::to_string(world_size_) + " could not start: " + why;
  fail(std::move(failure));
  std::unique_lock<std::mutex> lock(mutex_);
  ended_ += ranks;  // it (and the ranks after it, not asked for) never run
  finish_if_done(lock);
}

void ReplicaGroup::stop(int signal) {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  signal_all(signal);
}

void ReplicaGroup::fail(Failure failure) {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    failures_.push_back(std::move(failure));
    if (killed_ || stopping_) return;
    killed_ = true;
  }
  signal_all(SIGKILL);  // the others would only wait for it in their next collective
}

void ReplicaGroup::signal_all(int signal) {
  std::vector<StepServer::ChildId> children;
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    children = children_;
  }
  for (const StepServer::ChildId child : children) server_->signal(child, signal);  // ended ones are skipped
}

void ReplicaGroup::finish_if_done(std::unique_lock<std::mutex>& lock) {
  if (reported_ || !rank0_ || ended_ < world_size_) return;
  reported_ = true;
  AttemptResult result = group_result(std::move(*rank0_));
  lock.unlock();
  observer_->on_finished(std::move(result));
}

const ReplicaGroup::Failure* ReplicaGroup::cause(const AttemptResult& rank0) const {
  for (const Failure& f : failures_) {
    const bool crashed = f.rank == 0 ? rank0.failure_class == "crash" : !f.reported_error;
    if (crashed && !f.killed_by_group) return &f;
  }
  for (const Failure& f : failures_)
    if (!f.killed_by_group) return &f;
  return failures_.empty() ? nullptr : &failures_.front();
}

AttemptResult ReplicaGroup::group_result(AttemptResult rank0) const {
  if (stopping_) return rank0;  // stopped by the engine: cancelled, timeout
  const Failure* failure = cause(rank0);
  if (failure == nullptr) return rank0;  // every rank succeeded
  if (failure->rank == 0) {
    if (!rank0.ok()) rank0.message = "rank 0 of " + std::to_string(world_size_) + ": " + rank0.message;
    return rank0;
  }
  AttemptResult failed;
  failed.failure_class = failure->reported_error ? "error" : "crash";
  failed.message = failure->message + "; the other ranks were stopped";
  return failed;
}

}  // namespace kiln::host
