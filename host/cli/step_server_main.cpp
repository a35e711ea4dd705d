// kiln-step-server: the step server (kiln/host/step_server.hpp) as a binary
// of its own, linking only what a step needs (the plugin loader and the
// runner), not the whole CLI (HTTP, SQLite, YAML, the UI's assets). Each step
// is a fork of this process, and a fork copies the page tables of every
// mapping: fewer shared libraries make each step cheaper to start (issue 16).
// `kiln __step-server` remains the fallback when this binary is absent.
#include <kiln/host/step_server.hpp>

int main() {
  return kiln::host::run_step_server(3);
}
