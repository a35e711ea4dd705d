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
};

// {"component", "version", "library", "environment", "parameters": {name: digest},
//  "inputs": {name: digest}}: the digest of every part.
Json cache_key_parts(const CacheKeyInput& input);

// sha256 of the canonical JSON of the parts.
std::string cache_key(const Json& parts);

// What changed between an earlier entry's parts and these, e.g.
// "parameters changed (lr, epochs); input 'data' changed". Empty when nothing did.
std::string explain_cache_miss(const Json& now, const Json& before);

// JSON with object keys sorted and no whitespace: equal values, equal text.
std::string canonical_json(const Json& value);

}  // namespace kiln::host
