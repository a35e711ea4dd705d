// "Did you mean …?" for names a user mistyped.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace kiln::host {

// Levenshtein distance between two strings.
size_t edit_distance(const std::string& a, const std::string& b);

// The closest candidate within a distance that scales with the word's length.
std::optional<std::string> closest_match(const std::string& word, const std::vector<std::string>& candidates);

// " (did you mean 'x'?)" or "".
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace kiln::host
