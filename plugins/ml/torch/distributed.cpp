#include "distributed.hpp"

#include <cstdio>
#include <cstdlib>

#ifdef KILN_TORCH_GLOO
#define USE_C10D_GLOO 1
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

namespace kiln::ml {

#ifdef KILN_TORCH_GLOO
struct Collective::Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
};

namespace {

// Loopback rendezvous: every rank is on this machine. Otherwise the
// interface GLOO_SOCKET_IFNAME names (as PyTorch reads it), else the one
// this host's name resolves to.
std::shared_ptr<::gloo::transport::Device> gloo_device(const std::string& host) {
  if (host == "127.0.0.1" || host == "localhost") return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  if (const char* name = std::getenv("GLOO_SOCKET_IFNAME"); name != nullptr && *name != '\0')
    return c10d::ProcessGroupGloo::createDeviceForInterface(name);
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

}  // namespace

Collective::Collective(const Replica& replica, std::chrono::milliseconds timeout)
    : replica_(replica), group_(std::make_unique<Group>()) {
  run("the rendezvous", [&] {
    c10d::TCPStoreOptions options;
    options.port = static_cast<uint16_t>(replica.port);
    options.isServer = replica.rank == 0;
    options.numWorkers = replica.world_size;
    options.waitWorkers = true;
    options.timeout = timeout;
    group_->store = c10::make_intrusive<c10d::TCPStore>(replica.host, options);
    auto gloo_options = c10d::ProcessGroupGloo::Options::create(timeout);
    gloo_options->devices.push_back(gloo_device(replica.host));
    gloo_options->threads = 1;  // one collective at a time: the training loop waits for each
    group_->gloo =
        c10::make_intrusive<c10d::ProcessGroupGloo>(group_->store, replica.rank, replica.world_size, gloo_options);
  });
}

void Collective::sum_gradients(const std::vector<torch::Tensor>& parameters) {
  std::vector<torch::Tensor> flat;
  flat.reserve(parameters.size());
  for (const auto& p : parameters) {
    const auto& grad = p.grad();
    flat.push_back(grad.defined() ? grad.reshape(-1) : torch::zeros({p.numel()}, p.options()));
  }
  std::vector<torch::Tensor> buffer{torch::cat(flat)};
  run("the gradients' all-reduce", [&] { group_->gloo->allreduce(buffer)->wait(); });
  const torch::NoGradGuard no_grad;
  int64_t offset = 0;
  for (const auto& p : parameters) {
    const auto part = buffer[0].slice(0, offset, offset + p.numel()).view_as(p);
    offset += p.numel();
    auto& grad = const_cast<torch::Tensor&>(p).mutable_grad();
    if (grad.defined())
      grad.copy_(part);
    else
      grad = part.clone();
  }
}

void Collective::sum(std::vector<double>& values) {
  std::vector<torch::Tensor> buffer{torch::tensor(values, torch::kFloat64)};
  run("a sum", [&] { group_->gloo->allreduce(buffer)->wait(); });
  const auto result = buffer[0].accessor<double, 1>();
  for (size_t i = 0; i < values.size(); ++i) values[i] = result[static_cast<int64_t>(i)];
}

void Collective::broadcast(const std::vector<torch::Tensor>& tensors) {
  if (tensors.empty()) return;
  std::vector<torch::Tensor> flat;
  for (const auto& t : tensors) flat.push_back(t.detach().reshape(-1).to(torch::kFloat64));
  std::vector<torch::Tensor> buffer{torch::cat(flat)};
  run("a broadcast", [&] { group_->gloo->broadcast(buffer)->wait(); });
  const torch::NoGradGuard no_grad;
  int64_t offset = 0;
  for (const auto& t : tensors) {
    auto target = t;  // shares the storage
    target.copy_(buffer[0].slice(0, offset, offset + t.numel()).view_as(t));
    offset += t.numel();
  }
}

void Collective::barrier() {
  run("a barrier", [&] { group_->gloo->barrier()->wait(); });
}

#else  // LibTorch without Gloo's headers: the plugin builds, distributed steps fail clearly

struct Collective::Group {};

Collective::Collective(const Replica& replica, std::chrono::milliseconds) : replica_(replica) {
  throw Error("this kiln_torch was built without Gloo (install libgloo-dev and rebuild): it cannot train on " +
                  std::to_string(replica.world_size) + " replicas",
              KILN_ERROR_UNSUPPORTED);
}
void Collective::sum_gradients(const std::vector<torch::Tensor>&) {}
void Collective::sum(std::vector<double>&) {}
void Collective::broadcast(const std::vector<torch::Tensor>&) {}
void Collective::barrier() {}

#endif

Collective::~Collective() = default;

void Collective::run(const char* what, const std::function<void()>& collective) {
  const auto start = std::chrono::steady_clock::now();
  try {
    collective();
  } catch (const std::exception& e) {
    std::string message = e.what();
    if (const auto cut = message.find('\n'); cut != std::string::npos) message.resize(cut);  // c10's backtrace
    throw Error("rank " + std::to_string(replica_.rank) + " of " + std::to_string(replica_.world_size) + ": " + what +
                " failed (a replica died or timed out?): " + message);
  }
  seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string parameters_digest(torch::nn::Module& module) {
  uint64_t hash = 14695981039346656037ULL;
  const auto add = [&](const torch::Tensor& t) {
    const auto bytes = t.detach().to(torch::kCPU).contiguous();  // the weights may be on a GPU
    const auto* data = static_cast<const unsigned char*>(bytes.data_ptr());
    const size_t n = static_cast<size_t>(bytes.numel()) * bytes.element_size();
    for (size_t i = 0; i < n; ++i) hash = (hash ^ data[i]) * 1099511628211ULL;
  };
  for (const auto& item : module.named_parameters()) add(item.value());
  for (const auto& item : module.named_buffers()) add(item.value());
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(hash));
  return text;
}

}  // namespace kiln::ml
