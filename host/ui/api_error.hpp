// An API request refused: its HTTP status and the reason sent as
// {"error": reason}. Thrown by the handlers' helpers, answered by the router.
#pragma once

#include <stdexcept>
#include <string>

namespace kiln::ui {

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, const std::string& reason) : std::runtime_error(reason), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

}  // namespace kiln::ui
