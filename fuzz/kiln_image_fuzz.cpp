// The descriptor an OCI image carries when kiln image build made it
// (host/lib/common/kiln_image.cpp): the container executor reads it from an
// image that may come from anywhere. Any bytes either parse or are refused
// with a reason naming the file; what parses has absolute, normal paths and
// non-root ids, and writes back to text that parses to the same descriptor.
#include <kiln/host/kiln_image.hpp>

#include <stdexcept>

#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using kiln::host::KilnImage;
  const std::string text = kiln::fuzz::text_of(data, size);
  KilnImage image;
  try {
    image = kiln::host::parse_kiln_image(text, "/img/opt/kiln/image.json");
  } catch (const std::runtime_error& e) {
    if (std::string(e.what()).find("/img/opt/kiln/image.json") == std::string::npos)
      kiln::fuzz::fail("a refusal that does not name the file: " + std::string(e.what()));
    return 0;
  }
  for (const auto* path : {&image.kiln, &image.plugins, &image.pipeline_dir})
    if (!path->is_absolute() || path->lexically_normal() != *path) kiln::fuzz::fail("a path that is not absolute");
  if (image.uid < 1 || image.gid < 1 || image.user.empty()) kiln::fuzz::fail("a root or nameless user");
  const KilnImage again = kiln::host::parse_kiln_image(kiln::host::kiln_image_text(image), "again");
  if (again.kiln != image.kiln || again.plugins != image.plugins || again.pipeline_dir != image.pipeline_dir ||
      again.user != image.user || again.uid != image.uid || again.gid != image.gid)
    kiln::fuzz::fail("a descriptor that does not write back");
  return 0;
}
