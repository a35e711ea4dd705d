// The descriptor of an image built by `kiln image build`: see kiln_image.hpp.
#include <kiln/host/files.hpp>
#include <kiln/host/json.hpp>
#include <kiln/host/json_bounded.hpp>
#include <kiln/host/kiln_image.hpp>

#include <stdexcept>

namespace kiln::host {
namespace fs = std::filesystem;

namespace {

[[noreturn]] void bad_descriptor(const fs::path& file, const std::string& why) {
  throw std::runtime_error(file.string() + ": " + why + " (an image built by kiln image build has a valid one)");
}

fs::path absolute_field(const Json& doc, const char* key, const fs::path& file) {
  const auto it = doc.find(key);
  if (it == doc.end() || !it->is_string()) bad_descriptor(file, std::string("'") + key + "' must be a string");
  const fs::path path = it->get<std::string>();
  if (!path.is_absolute() || path.lexically_normal() != path)
    bad_descriptor(file, std::string("'") + key + "' must be an absolute, normal path, not " + excerpt_text(path.string()));
  return path;
}

int id_field(const Json& doc, const char* key, const fs::path& file) {
  const auto it = doc.find(key);
  if (it == doc.end() || !it->is_number_integer() || it->get<int64_t>() < 1 || it->get<int64_t>() > 0x7fffffff)
    bad_descriptor(file, std::string("'") + key + "' must be a non-root user or group id (1 or more)");
  return static_cast<int>(it->get<int64_t>());
}

}  // namespace

KilnImage parse_kiln_image(std::string_view text, const fs::path& file) {
  if (text.size() > kMaxKilnImageFileBytes)
    bad_descriptor(file, "more than " + std::to_string(kMaxKilnImageFileBytes) + " bytes");
  if (json_text_nested_deeper_than(text, 4)) bad_descriptor(file, "nested too deep");
  Json doc;
  try {
    doc = Json::parse(text);
  } catch (const Json::exception& e) {
    bad_descriptor(file, std::string("not JSON: ") + e.what());
  }
  if (!doc.is_object()) bad_descriptor(file, "must be a JSON object");
  const auto version = doc.find("kiln_image");
  if (version == doc.end() || !version->is_number_integer() || version->get<int64_t>() != 1)
    bad_descriptor(file, "'kiln_image' must be 1 (built by another kiln?)");
  KilnImage image;
  image.kiln = absolute_field(doc, "kiln", file);
  image.plugins = absolute_field(doc, "plugins", file);
  image.pipeline_dir = absolute_field(doc, "pipeline_dir", file);
  const auto user = doc.find("user");
  if (user == doc.end() || !user->is_string() || user->get_ref<const std::string&>().empty())
    bad_descriptor(file, "'user' must be a user name");
  image.user = user->get<std::string>();
  image.uid = id_field(doc, "uid", file);
  image.gid = id_field(doc, "gid", file);
  return image;
}

bool reached_without_links(const fs::path& rootfs, const fs::path& inside) {
  fs::path at = rootfs;
  std::error_code ec;
  for (const auto& part : inside.relative_path()) {
    at /= part;
    const fs::file_status status = fs::symlink_status(at, ec);
    if (ec || !fs::exists(status) || fs::is_symlink(status)) return false;
  }
  return true;
}

std::optional<KilnImage> read_kiln_image(const fs::path& rootfs) {
  const fs::path file = rootfs / fs::path(kKilnImageFile).relative_path();
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(file, ec)) && !fs::exists(file, ec)) return std::nullopt;  // not kiln's image
  // Never follow a link out of the image, at any level (/opt, /opt/kiln, the file).
  if (!reached_without_links(rootfs, kKilnImageFile) || !fs::is_regular_file(fs::symlink_status(file, ec)))
    bad_descriptor(file, "reached through a symbolic link, or not a regular file");
  if (fs::file_size(file) > kMaxKilnImageFileBytes)
    bad_descriptor(file, "more than " + std::to_string(kMaxKilnImageFileBytes) + " bytes");
  return parse_kiln_image(read_file(file), file);
}

std::string kiln_image_text(const KilnImage& image) {
  const Json doc{{"kiln_image", 1},
                 {"kiln", image.kiln.string()},
                 {"plugins", image.plugins.string()},
                 {"pipeline_dir", image.pipeline_dir.string()},
                 {"user", image.user},
                 {"uid", image.uid},
                 {"gid", image.gid}};
  return doc.dump(2) + "\n";
}

}  // namespace kiln::host
