// A component that links LibTorch and does a token amount of tensor work:
// what bench/step_start.sh measures the start latency of, cold and warm.
#include <torch/torch.h>
#include <kiln/sdk.hpp>

struct TorchProbe {
  static kiln::Manifest manifest() {
    return kiln::Manifest("bench.torch-probe", "1.0.0", kiln::Kind::Generic)
        .description("Sum a small tensor with LibTorch (start-latency benchmark)")
        .param(kiln::Param::Int("size").default_value(4).min(1).max(4096))
        .output_parameter(kiln::Port("sum", "float"));
  }

  // Run once by the step server before it forks probe steps: LibTorch's
  // first operation initialises its dispatcher caches and allocator, which
  // every forked step would otherwise redo. One thread: nothing to fork past.
  static void warm_up() {
    torch::set_num_threads(1);
    (void)torch::ones({2, 2}).sum().item<double>();
  }

  void run(kiln::Context& ctx) {
    torch::set_num_threads(1);  // Debian's LibTorch default; stated, not assumed
    const int64_t n = ctx.param_int("size");
    ctx.set_output("sum", torch::ones({n, n}).sum().item<double>());
  }
};

KILN_PLUGIN(TorchProbe)
