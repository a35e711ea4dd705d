// A raw HTTP/1.1 client over a blocking socket for tests of kiln serve's
// front end: it sends bytes exactly as given (pipelined, split, malformed)
// and reads answers one by one. Every read has a 30 s timeout, so no test hangs.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>

namespace kiln::test {

struct Reply {
  int status = 0;                              // 0: the connection ended first
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
};

inline std::string header_of(const Reply& reply, const std::string& name) {
  const auto it = reply.headers.find(name);
  return it == reply.headers.end() ? "" : it->second;
}

// A blocking client socket with a receive timeout (so no test can hang).
class Client {
 public:
  explicit Client(uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    timeval timeout{30, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~Client() { ::close(fd_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const { return connected_; }

  void send(const std::string& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return;
      sent += static_cast<size_t>(n);
    }
  }

  // The next answer (a 100 Continue is one too).
  Reply read_reply() {
    Reply reply = read_head();
    if (reply.status == 0) return reply;
    const size_t length = reply.headers.count("content-length") ? std::stoul(reply.headers["content-length"]) : 0;
    while (buffer_.size() < length)
      if (!fill()) return Reply{};
    reply.body = buffer_.substr(0, length);
    buffer_.erase(0, length);
    return reply;
  }

  // The status line and headers of the next answer; its body is left to read
  // (read_until: a streamed answer).
  Reply read_head() {
    Reply reply;
    size_t end = 0;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos)
      if (!fill()) return reply;
    const std::string head = buffer_.substr(0, end);
    buffer_.erase(0, end + 4);
    reply.status = std::stoi(head.substr(9, 3));
    size_t line = head.find("\r\n");
    while (line != std::string::npos) {
      const size_t next = head.find("\r\n", line + 2);
      const std::string header = head.substr(line + 2, next == std::string::npos ? std::string::npos : next - line - 2);
      const size_t colon = header.find(':');
      std::string name = header.substr(0, colon);
      std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
      reply.headers[name] = header.substr(header.find_first_not_of(' ', colon + 1));
      line = next;
    }
    return reply;
  }

  // The received bytes up to and including `needle`, taken from the input;
  // "" when the connection ends or the read times out first.
  std::string read_until(const std::string& needle) {
    size_t at = 0;
    while ((at = buffer_.find(needle)) == std::string::npos)
      if (!fill()) return "";
    std::string got = buffer_.substr(0, at + needle.size());
    buffer_.erase(0, at + needle.size());
    return got;
  }

  // Shortens the receive timeout (a read that must not wait long).
  void set_receive_timeout(std::chrono::milliseconds timeout) {
    timeval t{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &t, sizeof t);
  }

  // True when the server closes the connection (within the socket timeout).
  bool closed_by_server() {
    if (!buffer_.empty()) return false;
    char c = 0;
    return ::recv(fd_, &c, 1, 0) == 0;
  }

 private:
  bool fill() {
    char chunk[4096];
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    buffer_.append(chunk, static_cast<size_t>(n));
    return true;
  }

  int fd_;
  bool connected_ = false;
  std::string buffer_;
};

}  // namespace kiln::test
