// Exact step caching: the key of a step covers everything that decides its
// outputs. Each named part is digested separately and kept with the cache
// entry, so a miss can name what changed since the latest earlier entry.
#pragma once

#include <kiln/host/json.hpp>

#include <map>
#include <string>

namespace kiln::host {

struct CacheKeyInput {
  std::string component;                      // name
  std::string version;                        // component version
  std::string library_digest;                 // sha256 of the plugin library file
  Json parameters = Json::object();           // resolved parameters (defaults applied)
  std::map<std::string, std::string> inputs;  // input name -> artifact digest
  std::string environment;                    // executor image or other environment identity ("" for none)
  // A component file's name and the files it names -> sha256 (empty for a
  // plugin): already covered by library_digest, kept to explain a miss.
  std::map<std::string, std::string> files;
  std::string component_file;  // the component file's own name among `files`
};

// {"component", "version", "library", "environment", "parameters": {name: digest},
//  "inputs": {name: digest}}: the digest of every part; for a component file
// also "files": {name: digest} and "component_file": its own name.
Json cache_key_parts(const CacheKeyInput& input);

// sha256 of the canonical JSON of the parts, without "files" and
// "component_file" (explanations: "library" covers the files' contents).
std::string cache_key(const Json& parts);

// What changed between an earlier entry's parts and these, e.g.
// "parameters changed (lr, epochs); input 'data' changed", or for a component
// file "component file 'count.yaml' changed; file 'count.py' changed". Empty
// when nothing did.
std::string explain_cache_miss(const Json& now, const Json& before);

// JSON with object keys sorted and no whitespace: equal values, equal text.
std::string canonical_json(const Json& value);

}  // namespace kiln::host
