// The data plugin's components (docs/data-components.md describes each one's
// parameters and outputs). One class per component, one .cpp per class.
#pragma once

#include <kiln/sdk.hpp>

namespace kiln::data {

// Reads CSV/TSV (optionally gzipped) into a Dataset.
struct Csv {
  static Manifest manifest();
  void run(Context& ctx);
};

// Reads MNIST-family IDX image/label files (optionally gzipped) into a Dataset.
struct Idx {
  static Manifest manifest();
  void run(Context& ctx);
};

// Drops or imputes missing values, drops duplicates, clips outliers.
struct Clean {
  static Manifest manifest();
  void run(Context& ctx);
};

// Seeded, stratified train/validation/test split, optionally k-fold.
struct Split {
  static Manifest manifest();
  void run(Context& ctx);
};

// Fits scaling/one-hot on train, applies to all splits, saves the Transform.
struct TransformFit {
  static Manifest manifest();
  void run(Context& ctx);
};

// Seeded image/tabular augmentation and minority oversampling.
struct Augment {
  static Manifest manifest();
  void run(Context& ctx);
};

// Statistics and anomalies (against an optional reference) as a Report.
struct Validate {
  static Manifest manifest();
  void run(Context& ctx);
};

}  // namespace kiln::data
