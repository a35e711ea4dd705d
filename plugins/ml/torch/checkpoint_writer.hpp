// train.torch's checkpoint writes, one at a time on one thread that lives
// as long as its trainer: the file is written while the next epoch trains.
// A thread per write cost ~50 µs of every epoch on digits' short epochs
// (issue 23).
#pragma once

#include <condition_variable>
#include <exception>
#include <filesystem>
#include <mutex>
#include <optional>
#include <thread>

#include "checkpoint.hpp"

namespace kiln::ml {

class CheckpointWriter {
 public:
  CheckpointWriter() = default;
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;
  // Finishes the write in flight (its error is dropped: the trainer is
  // already ending), then ends the thread.
  ~CheckpointWriter();

  // Waits for the write before it (rethrowing that one's error), then hands
  // this one to the thread, started by the first write.
  void write(std::filesystem::path dir, int slot, CheckpointSnapshot snapshot);
  // Waits for the write in flight; rethrows its error.
  void finish();

 private:
  struct Job {
    std::filesystem::path dir;
    int slot = 0;
    CheckpointSnapshot snapshot;
  };
  void loop();

  std::mutex mutex_;
  std::condition_variable changed_;
  std::optional<Job> job_;  // handed over and not yet written
  std::exception_ptr error_;
  bool stop_ = false;
  std::thread thread_;  // last: started after the members it reads
};

}  // namespace kiln::ml
