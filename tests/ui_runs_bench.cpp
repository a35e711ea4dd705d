// Benchmark (not a test): kiln ui's runs list with many runs in the
// workspace. Writes N synthetic runs (tests/support/synthetic_runs.hpp) into
// a fresh workspace, starts the server on loopback, and times each query
// shape over keep-alive HTTP: p50, p95 and max in ms, from the request's
// first byte to the answer's last.
//   build/bin/ui_runs_bench [RUNS=10000] [REQUESTS=200]
#include <kiln/ui/ui_server.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "raw_http_client.hpp"
#include "synthetic_runs.hpp"
#include "test_support.hpp"

int main(int argc, char** argv) {
  using Clock = std::chrono::steady_clock;
  const int runs = argc > 1 ? std::stoi(argv[1]) : 10000;
  const int requests = argc > 2 ? std::stoi(argv[2]) : 200;
  kiln::test::TempDir dir;
  const auto written = kiln::test::add_synthetic_runs(dir.path(), runs, 3);
  kiln::ui::UiOptions options;
  options.workspace = dir.path();
  kiln::ui::UiServer server(options);
  server.start();
  const std::string host = "Host: 127.0.0.1\r\n";
  const std::vector<std::pair<std::string, std::string>> shapes{
      {"newest 50 (default)", "/api/v1/runs"},
      {"page 180 of 200", "/api/v1/runs?offset=9000"},
      {"by duration, asc", "/api/v1/runs?sort=duration&order=asc"},
      {"by pipeline", "/api/v1/runs?sort=pipeline"},
      {"status=failed", "/api/v1/runs?status=failed"},
      {"pipeline=pipe-3", "/api/v1/runs?pipeline=pipe-3"},
      {"text q=error+4", "/api/v1/runs?q=error+4"},
      {"since/until (a week)", "/api/v1/runs?since=2026-05-01&until=2026-05-08"},
      {"all filters", "/api/v1/runs?status=succeeded,failed&pipeline=pipe-1&q=pipe&since=2026-04-15&sort=duration"},
      {"500 per page", "/api/v1/runs?limit=500"},
  };
  std::printf("%d runs, %d requests per shape, one keep-alive connection\n", runs, requests);
  std::printf("%-24s %8s %8s %8s %8s\n", "query", "p50 ms", "p95 ms", "max ms", "total");
  kiln::test::Client client(server.port());
  for (const auto& [name, target] : shapes) {
    std::vector<double> ms;
    std::string total;
    for (int i = 0; i < requests; ++i) {
      const auto start = Clock::now();
      client.send("GET " + target + " HTTP/1.1\r\n" + host + "\r\n");
      const auto reply = client.read_reply();
      ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
      if (reply.status != 200) {
        std::fprintf(stderr, "%s: status %d: %s\n", target.c_str(), reply.status, reply.body.c_str());
        return 1;
      }
      if (i == 0) total = reply.body.substr(9, reply.body.find(',') - 9);
    }
    std::sort(ms.begin(), ms.end());
    const auto at = [&](double q) { return ms[std::min(ms.size() - 1, static_cast<size_t>(q * ms.size()))]; };
    std::printf("%-24s %8.2f %8.2f %8.2f %8s\n", name.c_str(), at(0.5), at(0.95), ms.back(), total.c_str());
  }
  (void)written;
  return 0;
}
