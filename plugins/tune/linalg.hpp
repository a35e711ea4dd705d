// The small dense linear algebra the model-based samplers need (matrices of
// a few hundred rows at most): Cholesky factor and solves for the Gaussian
// process, the symmetric eigendecomposition (Jacobi) for CMA-ES.
#pragma once

#include <cmath>
#include <optional>
#include <vector>

namespace kiln::tune::linalg {

using Vector = std::vector<double>;
using Matrix = std::vector<Vector>;  // row-major, square where it matters

// Lower-triangular L with A = L L^T, or nullopt when A is not positive definite.
inline std::optional<Matrix> cholesky(const Matrix& a) {
  const size_t n = a.size();
  Matrix l(n, Vector(n, 0.0));
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j <= i; ++j) {
      double sum = a[i][j];
      for (size_t k = 0; k < j; ++k) sum -= l[i][k] * l[j][k];
      if (i == j) {
        if (!(sum > 0)) return std::nullopt;
        l[i][i] = std::sqrt(sum);
      } else {
        l[i][j] = sum / l[j][j];
      }
    }
  }
  return l;
}

// Solves L x = b (forward substitution).
inline Vector solve_lower(const Matrix& l, const Vector& b) {
  Vector x(b.size());
  for (size_t i = 0; i < b.size(); ++i) {
    double sum = b[i];
    for (size_t k = 0; k < i; ++k) sum -= l[i][k] * x[k];
    x[i] = sum / l[i][i];
  }
  return x;
}

// Solves L^T x = b (back substitution).
inline Vector solve_upper_transposed(const Matrix& l, const Vector& b) {
  const size_t n = b.size();
  Vector x(n);
  for (size_t i = n; i-- > 0;) {
    double sum = b[i];
    for (size_t k = i + 1; k < n; ++k) sum -= l[k][i] * x[k];
    x[i] = sum / l[i][i];
  }
  return x;
}

// Eigendecomposition of a symmetric matrix by cyclic Jacobi rotations:
// A = V diag(values) V^T, V's columns the eigenvectors.
struct Eigen {
  Vector values;
  Matrix vectors;
};
inline Eigen symmetric_eigen(Matrix a) {
  const size_t n = a.size();
  Matrix v(n, Vector(n, 0.0));
  for (size_t i = 0; i < n; ++i) v[i][i] = 1.0;
  for (int sweep = 0; sweep < 64; ++sweep) {
    double off = 0;
    for (size_t p = 0; p < n; ++p)
      for (size_t q = p + 1; q < n; ++q) off += a[p][q] * a[p][q];
    if (off < 1e-30) break;
    for (size_t p = 0; p < n; ++p) {
      for (size_t q = p + 1; q < n; ++q) {
        if (std::abs(a[p][q]) < 1e-300) continue;
        const double theta = (a[q][q] - a[p][p]) / (2 * a[p][q]);
        const double t = (theta >= 0 ? 1.0 : -1.0) / (std::abs(theta) + std::sqrt(theta * theta + 1));
        const double c = 1 / std::sqrt(t * t + 1), s = t * c;
        for (size_t k = 0; k < n; ++k) {  // A <- A J (columns p, q)
          const double akp = a[k][p], akq = a[k][q];
          a[k][p] = c * akp - s * akq;
          a[k][q] = s * akp + c * akq;
        }
        for (size_t k = 0; k < n; ++k) {  // A <- J^T A (rows p, q)
          const double apk = a[p][k], aqk = a[q][k];
          a[p][k] = c * apk - s * aqk;
          a[q][k] = s * apk + c * aqk;
        }
        for (size_t k = 0; k < n; ++k) {  // V <- V J
          const double vkp = v[k][p], vkq = v[k][q];
          v[k][p] = c * vkp - s * vkq;
          v[k][q] = s * vkp + c * vkq;
        }
      }
    }
  }
  Eigen out;
  for (size_t i = 0; i < n; ++i) out.values.push_back(a[i][i]);
  out.vectors = std::move(v);
  return out;
}

}  // namespace kiln::tune::linalg
