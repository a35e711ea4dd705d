// An API request refused: its HTTP status and the reason sent as
// {"error": reason}, with `problems` added when there are several (a
// pipeline's validation problems, each at its file:line:col). Thrown by the
// handlers' helpers, answered by the router.
#pragma once

#include <kiln/host/json.hpp>

#include <stdexcept>
#include <string>

namespace kiln::ui {

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, const std::string& reason, host::Json problems = nullptr)
      : std::runtime_error(reason), status_(status), problems_(std::move(problems)) {}
  int status() const { return status_; }
  const host::Json& problems() const { return problems_; }

 private:
  int status_;
  host::Json problems_;
};

}  // namespace kiln::ui
