// kiln C++ SDK: where this process stands in a data-parallel step
// (`distributed: {replicas: N}`, docs/distributed.md).
//
// The contract is three environment variables, the same on every executor
// (the process executor sets them per rank; a cluster executor maps its own
// task ids onto them):
//   KILN_RANK        0 .. N-1; rank 0 is the step's attempt, its outputs count
//   KILN_WORLD_SIZE  N
//   KILN_RENDEZVOUS  HOST:PORT of the rendezvous store rank 0 serves
// None set: a single process (rank 0 of 1). No ABI change: header-only, it
// reads the environment, so a plugin built against an older SDK simply runs
// every replica as if it were alone.
#ifndef KILN_SDK_REPLICA_HPP
#define KILN_SDK_REPLICA_HPP

#include <kiln/sdk.hpp>

#include <cerrno>
#include <cstdlib>
#include <string>

namespace kiln {

struct Replica {
  int rank = 0;
  int world_size = 1;
  std::string host;  // the rendezvous store's address ("" when world_size is 1)
  int port = 0;
  bool distributed() const { return world_size > 1; }
};

// The most replicas one step may ask for (the host's limit too).
inline constexpr int kMaxReplicas = 256;

namespace detail {

inline long replica_number(const char* name, const char* text, long low, long high) {
  errno = 0;
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || value < low || value > high)
    throw Error(std::string(name) + " must be an integer in [" + std::to_string(low) + ", " + std::to_string(high) +
                    "], not '" + text + "'",
                KILN_ERROR_INVALID_ARGUMENT);
  return value;
}

}  // namespace detail

// Parses the three values (nullptr = unset). Throws kiln::Error naming the
// variable when one is malformed, out of range, or missing beside the others.
inline Replica parse_replica(const char* rank, const char* world_size, const char* rendezvous) {
  Replica r;
  if (world_size == nullptr && rank == nullptr && rendezvous == nullptr) return r;
  if (world_size == nullptr || rank == nullptr)
    throw Error("KILN_RANK and KILN_WORLD_SIZE must be set together", KILN_ERROR_INVALID_ARGUMENT);
  r.world_size = static_cast<int>(detail::replica_number("KILN_WORLD_SIZE", world_size, 1, kMaxReplicas));
  r.rank = static_cast<int>(detail::replica_number("KILN_RANK", rank, 0, r.world_size - 1));
  if (r.world_size == 1) return r;
  const std::string address = rendezvous == nullptr ? "" : rendezvous;
  const auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0)
    throw Error("KILN_RENDEZVOUS must be HOST:PORT, not '" + address + "'", KILN_ERROR_INVALID_ARGUMENT);
  r.host = address.substr(0, colon);
  r.port = static_cast<int>(detail::replica_number("KILN_RENDEZVOUS's port", address.c_str() + colon + 1, 1, 65535));
  return r;
}

// This process's place, from the environment.
inline Replica replica() {
  return parse_replica(std::getenv("KILN_RANK"), std::getenv("KILN_WORLD_SIZE"), std::getenv("KILN_RENDEZVOUS"));
}

}  // namespace kiln

#endif  // KILN_SDK_REPLICA_HPP
