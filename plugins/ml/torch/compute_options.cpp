#include "compute_options.hpp"

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace kiln::ml {

DeviceRequest parse_device(const std::string& text) {
  if (text == "auto") return {DeviceKind::Auto, 0, text};
  if (text == "cpu") return {DeviceKind::Cpu, 0, text};
  if (text == "cuda") return {DeviceKind::Cuda, 0, text};
  const std::string prefix = "cuda:";
  const std::string digits = text.size() > prefix.size() ? text.substr(prefix.size()) : "";
  const bool numeric = !digits.empty() && digits.size() <= 4 && std::all_of(digits.begin(), digits.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c));
  });
  if (text.compare(0, prefix.size(), prefix) != 0 || !numeric)
    throw std::invalid_argument("device must be auto, cpu, cuda or cuda:N (N = 0, 1, ...), not '" + text + "'");
  return {DeviceKind::Cuda, std::stoi(digits), text};
}

Precision parse_precision(const std::string& text) {
  if (text == "fp32") return Precision::Fp32;
  if (text == "bf16") return Precision::Bf16;
  if (text == "fp16") return Precision::Fp16;
  throw std::invalid_argument("precision must be fp32, bf16 or fp16, not '" + text + "'");
}

std::string precision_name(Precision precision) {
  switch (precision) {
    case Precision::Bf16:
      return "bf16";
    case Precision::Fp16:
      return "fp16";
    case Precision::Fp32:
      break;
  }
  return "fp32";
}

}  // namespace kiln::ml
