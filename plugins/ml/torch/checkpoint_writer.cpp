#include "checkpoint_writer.hpp"

#include <utility>

namespace kiln::ml {

CheckpointWriter::~CheckpointWriter() {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void CheckpointWriter::write(std::filesystem::path dir, int slot, CheckpointSnapshot snapshot) {
  finish();
  if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });  // before the job: a failed start leaves none
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    job_ = Job{std::move(dir), slot, std::move(snapshot)};
  }
  changed_.notify_all();
}

void CheckpointWriter::finish() {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [this] { return !job_; });
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

void CheckpointWriter::loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    changed_.wait(lock, [this] { return stop_ || job_; });
    if (!job_) return;  // stopped with nothing left to write
    Job& job = *job_;   // only this thread touches it until it is reset
    lock.unlock();
    std::exception_ptr error;
    try {
      write_checkpoint(job.dir, job.slot, std::move(job.snapshot));
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    error_ = error;
    job_.reset();
    changed_.notify_all();
  }
}

}  // namespace kiln::ml
