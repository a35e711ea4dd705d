// `kiln step`: the runner that executes one component in its own process and
// reports over the channel on fd 3 (see executor.hpp).
#include <signal.h>
#include <unistd.h>
#include <kiln/host/executor.hpp>
#include <kiln/host/files.hpp>
#include <kiln/host/invoke.hpp>
#include <kiln/host/plugin_library.hpp>

#include <mutex>

namespace kiln::host {
namespace {

std::atomic<bool> g_cancelled{false};

extern "C" void on_stop_signal(int) {
  g_cancelled = true;
}

// Writes events as JSON lines; whole lines only, from any thread.
class ChannelWriter : public StepEventSink {
 public:
  explicit ChannelWriter(int fd) : fd_(fd) {}

  void write(const Json& event) {
    // Plugins' text may hold invalid UTF-8: replace it rather than throw.
    const std::string line = event.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
    const std::lock_guard<std::mutex> lock(mutex_);
    size_t written = 0;
    while (written < line.size()) {
      const ssize_t n = ::write(fd_, line.data() + written, line.size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;  // the host is gone; nothing left to tell
      written += static_cast<size_t>(n);
    }
  }
  void on_log(KilnLogLevel level, const std::string& message) override {
    write({{"event", "log"}, {"level", log_level_name(level)}, {"message", message}});
  }
  void on_metric(const std::string& name, double value, int64_t step) override {
    write({{"event", "metric"}, {"name", name}, {"value", value}, {"step", step}});
  }
  void on_progress(double fraction, const std::string& message) override {
    write({{"event", "progress"}, {"fraction", fraction}, {"message", message}});
  }
  void on_output_parameter(const std::string& name, const Json& value) override {
    write({{"event", "output_parameter"}, {"name", name}, {"value", value}});
  }
  void on_output_metadata(const std::string& name, const Json& metadata) override {
    write({{"event", "output_metadata"}, {"name", name}, {"metadata", metadata}});
  }

 private:
  int fd_;
  std::mutex mutex_;
};

StepInvocation invocation_from(const Json& request) {
  StepInvocation invocation;
  invocation.parameters = request.at("parameters");
  for (const auto& item : request.at("inputs").items())
    invocation.inputs[item.key()] =
        InputArtifact{item.value().at("path").get<std::string>(), item.value().at("metadata")};
  invocation.output_dir = request.at("output_dir").get<std::string>();
  invocation.temp_dir = request.at("temp_dir").get<std::string>();
  invocation.checkpoint_dir = request.value("checkpoint_dir", "");
  return invocation;
}

}  // namespace

int run_step_request(const std::filesystem::path& request_file, int channel_fd) {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  ChannelWriter channel(channel_fd);
  channel.write({{"event", "hello"}, {"channel", kRunnerChannelVersion}, {"pid", ::getpid()}});
  StepOutcome outcome;
  try {
    const Json request = Json::parse(read_file(request_file));
    if (request.value("channel", 0) != kRunnerChannelVersion)
      throw std::runtime_error("request speaks channel " + std::to_string(request.value("channel", 0)) +
                               ", this runner speaks " + std::to_string(kRunnerChannelVersion));
    const auto library = PluginLibrary::load(request.at("library").get<std::string>());
    const std::string name = request.at("component").get<std::string>();
    const auto* component = library->find(name);
    if (component == nullptr)
      throw std::runtime_error(request.at("library").get<std::string>() + " provides no " + name);
    outcome = invoke_component(*component, invocation_from(request), channel, g_cancelled);
  } catch (const std::exception& e) {
    outcome.code = KILN_ERROR_INTERNAL;
    outcome.message = std::string("runner: ") + e.what();
  }
  channel.write({{"event", "result"}, {"ok", outcome.ok}, {"code", outcome.code}, {"message", outcome.message}});
  return outcome.ok ? 0 : 1;
}

}  // namespace kiln::host
