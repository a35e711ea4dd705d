// A component file's command, run by `kiln step` (or a thread of kiln for
// the in-process executor): argv without a shell, kiln's environment, the
// report pipe on fd 3 read live, the exit mapped to the outcome.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <kiln/host/command_runner.hpp>
#include <kiln/host/expression.hpp>
#include <kiln/host/json_bounded.hpp>
#include <kiln/host/paths.hpp>
#include <kiln/host/subprocess.hpp>
#include <kiln/host/unique_fd.hpp>

#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>

namespace kiln::host {
namespace fs = std::filesystem;

namespace {

std::string param_env_text(const Json& value) {
  return value.is_string() ? value.get<std::string>() : value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// The first word of `text` and what follows it (leading blanks skipped).
std::pair<std::string_view, std::string_view> split_word(std::string_view text) {
  const auto start = text.find_first_not_of(" \t");
  if (start == std::string_view::npos) return {{}, {}};
  text.remove_prefix(start);
  const auto end = text.find_first_of(" \t");
  if (end == std::string_view::npos) return {text, {}};
  std::string_view rest = text.substr(end);
  const auto next = rest.find_first_not_of(" \t");
  return {text.substr(0, end), next == std::string_view::npos ? std::string_view{} : rest.substr(next)};
}

template <class T>
std::optional<T> number(std::string_view text) {
  T value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

ReportLine fail(std::string message) {
  return ReportLine{std::nullopt, std::move(message)};
}

ReportLine metric_line(std::string_view rest, std::map<std::string, int64_t>& metric_steps) {
  const auto [name, after_name] = split_word(rest);
  const auto [value_text, after_value] = split_word(after_name);
  const auto [step_text, extra] = split_word(after_value);
  if (name.empty() || value_text.empty() || !extra.empty()) return fail("expected: metric NAME VALUE [STEP]");
  const auto value = number<double>(value_text);
  if (!value || !std::isfinite(*value)) return fail("metric value '" + std::string(value_text) + "' is not a number");
  int64_t step = 0;
  auto& next = metric_steps[std::string(name)];
  if (step_text.empty()) {
    step = next;
  } else if (const auto s = number<int64_t>(step_text); s && *s >= 0) {
    step = *s;
  } else {
    return fail("metric step '" + std::string(step_text) + "' is not a whole number ≥ 0");
  }
  next = step + 1;
  return ReportLine{MetricEvent{std::string(name), *value, step}, {}};
}

// "0.25", or "I/N" (what a shell loop can write without floating point).
std::optional<double> fraction_of(std::string_view text) {
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) return number<double>(text);
  const auto done = number<double>(text.substr(0, slash)), total = number<double>(text.substr(slash + 1));
  if (!done || !total || !(*total > 0)) return std::nullopt;
  return *done / *total;
}

ReportLine progress_line(std::string_view rest) {
  const auto [fraction_text, message] = split_word(rest);
  const auto fraction = fraction_of(fraction_text);
  if (!fraction || !(*fraction >= 0 && *fraction <= 1))
    return fail("expected: progress FRACTION [MESSAGE], FRACTION from 0 to 1 or I/N");
  return ReportLine{ProgressEvent{*fraction, std::string(message)}, {}};
}

ReportLine output_line(std::string_view rest, const ComponentManifest& manifest) {
  const auto [name, value_text] = split_word(rest);
  if (name.empty()) return fail("expected: output NAME VALUE");
  const PortSpec* port = manifest.find_output_parameter(std::string(name));
  if (port == nullptr)
    return fail("component '" + manifest.name + "' declares no output parameter '" + std::string(name) + "'");
  const auto type = parse_value_type(port->type).value_or(ValueType::String);
  Json value = std::string(value_text);
  if (type != ValueType::String) {
    if (json_text_nested_deeper_than(value_text, kMaxRunnerValueDepth))
      return fail("output parameter '" + std::string(name) + "' is nested too deeply");
    value = Json::parse(value_text, nullptr, false);
    if (value.is_discarded() || !has_value_type(value, type))
      return fail("output parameter '" + std::string(name) + "' must be a " + port->type + " (as JSON), not '" +
                  std::string(value_text.substr(0, 200)) + "'");
  }
  return ReportLine{OutputParameterEvent{std::string(name), std::move(value)}, {}};
}

ReportLine log_line(std::string_view rest) {
  const auto [level, message] = split_word(rest);
  const std::pair<std::string_view, LogLevel> levels[] = {
      {"debug", LogLevel::Debug}, {"info", LogLevel::Info}, {"warning", LogLevel::Warning}, {"error", LogLevel::Error}};
  for (const auto& [word, value] : levels)
    if (level == word) return ReportLine{LogEvent{value, std::string(message)}, {}};
  return fail("expected: log debug|info|warning|error MESSAGE");
}

KilnLogLevel abi_level(LogLevel level) {
  switch (level) {
    case LogLevel::Debug: return KILN_LOG_DEBUG;
    case LogLevel::Info: return KILN_LOG_INFO;
    case LogLevel::Warning: return KILN_LOG_WARNING;
    case LogLevel::Error: return KILN_LOG_ERROR;
  }
  return KILN_LOG_INFO;
}

// Opens a step log for appending (the in-process executor's logs).
UniqueFd open_append(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot open " + path.string() + ": " + std::strerror(errno));
  return UniqueFd(fd);
}

// What a shell's own exit statuses mean.
std::string exit_hint(const ExitStatus& status) {
  if (status.signal != 0) return "";
  if (status.code == 126) return " (the program is not executable)";
  if (status.code == 127) return " (a program was not found)";
  return "";
}

// Follows the command to its end: the report pipe as it is written, the
// cancel flag (Own group), the exit through a pidfd. Returns its exit.
class CommandWatch {
 public:
  CommandWatch(const CommandRun& run, const ComponentManifest& manifest, StepEventSink& sink,
               const std::atomic<bool>& cancelled)
      : run_(run), manifest_(manifest), sink_(sink), cancelled_(cancelled) {}

  ExitStatus follow(ChildProcess& child, int report_fd) {
    ::fcntl(report_fd, F_SETFL, ::fcntl(report_fd, F_GETFL) | O_NONBLOCK);
    const UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, child.pid(), 0)));
    if (!pidfd.valid()) throw std::runtime_error(std::string("pidfd_open: ") + std::strerror(errno));
    bool report_open = true;
    bool stopping = false;
    std::chrono::steady_clock::time_point kill_at;
    // Only an Own group needs the runner to act on a cancel: a Runners group
    // got the executor's signal itself. The flag cannot wake poll, hence the tick.
    const int tick = run_.group == CommandGroup::Own ? 100 : -1;
    for (;;) {
      std::array<pollfd, 2> fds{pollfd{pidfd.get(), POLLIN, 0}, pollfd{report_fd, POLLIN, 0}};
      const int ready = ::poll(fds.data(), report_open ? 2 : 1, tick);
      if (ready < 0 && errno != EINTR) throw std::runtime_error(std::string("poll: ") + std::strerror(errno));
      if (ready > 0 && report_open && fds[1].revents != 0) report_open = read_report(report_fd);
      if (ready > 0 && fds[0].revents != 0) break;
      if (run_.group == CommandGroup::Own && cancelled_ && !stopping) {
        child.kill_group(SIGTERM);
        stopping = true;
        kill_at = std::chrono::steady_clock::now() + run_.grace;
      }
      if (stopping && std::chrono::steady_clock::now() >= kill_at) child.kill_group(SIGKILL);
    }
    // The leader has ended but is not reaped, so its group id is still its
    // own: what it left behind goes with it (Runners: the step server does this).
    if (run_.group == CommandGroup::Own) child.kill_group(SIGKILL);
    while (report_open) report_open = read_report(report_fd);
    splitter_.feed("\n", [&](std::string_view line) { apply(line); }, [] {});
    return child.wait();
  }

  const std::set<std::string>& outputs_reported() const { return outputs_; }

 private:
  // Reads what is there; false at the end (or nothing more to read once the command has ended).
  bool read_report(int fd) {
    std::array<char, 65536> buffer{};
    const ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n > 0) {
      splitter_.feed(
          std::string_view(buffer.data(), static_cast<size_t>(n)), [&](std::string_view line) { apply(line); },
          [&] { sink_.on_log(KILN_LOG_WARNING, "report line " + std::to_string(++line_no_) + ": longer than the limit, dropped"); });
      return true;
    }
    return n < 0 && errno == EINTR;
  }

  void apply(std::string_view line) {
    ++line_no_;
    ReportLine parsed = parse_report_line(line, manifest_, metric_steps_);
    if (!parsed.error.empty())
      return sink_.on_log(KILN_LOG_WARNING, "report line " + std::to_string(line_no_) + ": " + parsed.error);
    if (!parsed.event) return;
    if (const auto* m = std::get_if<MetricEvent>(&*parsed.event)) sink_.on_metric(m->name, m->value, m->step);
    if (const auto* p = std::get_if<ProgressEvent>(&*parsed.event)) sink_.on_progress(p->fraction, p->message);
    if (const auto* l = std::get_if<LogEvent>(&*parsed.event))
      sink_.on_log(abi_level(l->level), l->message);
    if (const auto* o = std::get_if<OutputParameterEvent>(&*parsed.event)) {
      sink_.on_output_parameter(o->name, o->value);
      outputs_.insert(o->name);
    }
  }

  const CommandRun& run_;
  const ComponentManifest& manifest_;
  StepEventSink& sink_;
  const std::atomic<bool>& cancelled_;
  RunnerLineSplitter splitter_;
  std::map<std::string, int64_t> metric_steps_;
  std::set<std::string> outputs_;
  size_t line_no_ = 0;
};

}  // namespace

ReportLine parse_report_line(std::string_view line, const ComponentManifest& manifest,
                             std::map<std::string, int64_t>& metric_steps) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  const auto [keyword, rest] = split_word(line);
  if (keyword.empty() || keyword[0] == '#') return {};
  if (keyword == "metric") return metric_line(rest, metric_steps);
  if (keyword == "progress") return progress_line(rest);
  if (keyword == "output") return output_line(rest, manifest);
  if (keyword == "log") return log_line(rest);
  return fail("unknown report '" + std::string(keyword.substr(0, 40)) + "' (use metric, progress, output or log)");
}

CommandLine command_line(const ComponentFile& component, const StepInvocation& invocation,
                         const std::string& report_file) {
  const ComponentManifest& m = component.manifest;
  CommandValues values;
  values.parameters = invocation.parameters;
  values.component_dir = component.path.parent_path().string();
  values.temp_dir = invocation.temp_dir.string();
  values.checkpoint_dir = invocation.checkpoint_dir.string();
  values.report_file = report_file;
  CommandLine line;
  for (const auto& input : m.inputs) {
    const auto it = invocation.inputs.find(input.name);
    values.inputs[input.name] = it == invocation.inputs.end() ? "" : it->second.path.string();
    line.env.emplace_back("KILN_INPUT_" + input.name, values.inputs[input.name]);
  }
  for (const auto& output : m.outputs) {
    values.outputs[output.name] = (invocation.output_dir / output.name).string();
    line.env.emplace_back("KILN_OUTPUT_" + output.name, values.outputs[output.name]);
  }
  for (const auto& item : invocation.parameters.items())
    line.env.emplace_back("KILN_PARAM_" + item.key(), param_env_text(item.value()));
  line.env.emplace_back("KILN_COMPONENT_DIR", values.component_dir);
  line.env.emplace_back("KILN_TEMP_DIR", values.temp_dir);
  line.env.emplace_back("KILN_CHECKPOINT_DIR", values.checkpoint_dir);
  line.env.emplace_back("KILN_REPORT", report_file);
  // `import kiln_report` (python/kiln_report.py) in any Python command; a
  // component's own `env: {PYTHONPATH: ...}` comes later and wins.
  if (const fs::path helper = python_helper_dir(); fs::is_regular_file(helper / "kiln_report.py")) {
    const char* inherited = std::getenv("PYTHONPATH");
    line.env.emplace_back("PYTHONPATH",
                          helper.string() + (inherited && *inherited ? ":" + std::string(inherited) : std::string()));
  }
  // The step server binds its own symbols eagerly (cheap forks); a command
  // (a Python interpreter, say) would pay for binding all of its own.
  line.env.emplace_back("LD_BIND_NOW", "");
  const auto render = [&](const CommandText& text) {
    try {
      return render_command_text(text.text, values);
    } catch (const ExpressionError& e) {
      throw std::runtime_error(text.pos.str() + ": " + e.what());
    }
  };
  const CommandImplementation& impl = component.implementation;
  if (impl.shell) {
    line.argv = {"/bin/sh", "-c", impl.shell->text, m.name};
  } else {
    for (const auto& arg : impl.command) line.argv.push_back(render(arg));
  }
  for (const auto& [name, value] : impl.env) line.env.emplace_back(name, render(value));
  line.workdir = impl.workdir ? fs::path(render(*impl.workdir)) : invocation.temp_dir;
  if (line.workdir.is_relative()) line.workdir = component.path.parent_path() / line.workdir;
  if (line.argv[0].find('/') == std::string::npos) {
    const auto found = find_in_path(line.argv[0]);
    if (!found) throw std::runtime_error("program '" + line.argv[0] + "' is not on PATH");
    line.argv[0] = found->string();
  }
  return line;
}

StepOutcome run_command_component(const CommandRun& run, StepEventSink& sink, const std::atomic<bool>& cancelled) {
  StepOutcome outcome;
  outcome.code = KILN_ERROR_INVALID_ARGUMENT;
  try {
    const ComponentFile component = parse_component_file(run.component_file);
    const StepInvocation& invocation = run.invocation;
    for (const auto& output : component.manifest.outputs) fs::create_directories(invocation.output_dir / output.name);
    fs::create_directories(invocation.temp_dir);
    if (!invocation.checkpoint_dir.empty()) fs::create_directories(invocation.checkpoint_dir);
    constexpr int kReportFd = 3;
    const CommandLine line = command_line(component, invocation, "/dev/fd/" + std::to_string(kReportFd));
    fs::create_directories(line.workdir);
    Pipe report;
    ChildProcess::Options options{line.argv, {{1, 1}, {2, 2}, {kReportFd, report.write_fd}}, line.workdir, line.env};
    std::optional<UniqueFd> out, err;
    if (run.log_dir) {
      fs::create_directories(*run.log_dir);
      out = open_append(*run.log_dir / "stdout.log");
      err = open_append(*run.log_dir / "stderr.log");
      options.fds[0].second = out->get();
      options.fds[1].second = err->get();
    }
    options.new_process_group = run.group == CommandGroup::Own;
    outcome.code = KILN_ERROR_UNKNOWN;
    ChildProcess child = ChildProcess::spawn(options);
    report.close_write();
    CommandWatch watch(run, component.manifest, sink, cancelled);
    const ExitStatus status = watch.follow(child, report.read_fd);
    const std::string program = fs::path(line.argv[0]).filename().string();
    if (cancelled) {
      outcome.code = KILN_ERROR_CANCELLED;
      outcome.message = "command '" + program + "' stopped on cancellation (" + status.describe() + ")";
    } else if (!status.success()) {
      outcome.message = "command '" + program + "' " + status.describe() + exit_hint(status) + " (see stderr.log)";
    } else {
      for (const auto& port : component.manifest.output_parameters)
        if (!watch.outputs_reported().count(port.name)) {
          outcome.message = "command '" + program + "' exited with status 0 without reporting output parameter '" +
                            port.name + "' (write 'output " + port.name + " VALUE' to $KILN_REPORT)";
          return outcome;
        }
      outcome.ok = true;
      outcome.code = 0;
    }
  } catch (const std::exception& e) {
    outcome.message = e.what();
  }
  return outcome;
}

}  // namespace kiln::host
