// Where and in which precision train.torch, evaluate and serve.torch compute:
// the `device` and `precision` parameters, parsed torch-free (unit-tested
// alone). Resolving a device against the GPUs a step sees is device.cpp's job.
#pragma once

#include <string>

namespace kiln::ml {

enum class DeviceKind { Auto, Cpu, Cuda };

struct DeviceRequest {
  DeviceKind kind = DeviceKind::Auto;
  int index = 0;              // cuda:N (0 for plain `cuda`)
  std::string text = "auto";  // as the user wrote it, for messages
};

enum class Precision { Fp32, Bf16, Fp16 };

// "auto", "cpu", "cuda" or "cuda:N"; throws std::invalid_argument naming the
// parameter (`device`) and the accepted forms.
DeviceRequest parse_device(const std::string& text);

// "fp32", "bf16" or "fp16"; throws std::invalid_argument naming `precision`.
Precision parse_precision(const std::string& text);
std::string precision_name(Precision precision);

}  // namespace kiln::ml
