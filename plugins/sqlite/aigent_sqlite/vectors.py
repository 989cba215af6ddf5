"""Unit vectors of one partition in a float32 matrix, scored against a query in one product."""

from __future__ import annotations

import os
from collections.abc import Sequence

# One BLAS thread: a recall is one matrix-vector product, and on a busy machine (other agents,
# the event loop) more threads waited on each other: p95 at 100k rows was 36 ms with two, 21
# with one. Only applies if numpy is not imported yet; set the variable to choose otherwise.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np


class Rows:
    """Row ids and their vectors, grown in place as rows are added (ids only increase)."""

    def __init__(self, dimension: int) -> None:
        self.ids = np.empty(0, dtype=np.int64)
        self.matrix = np.empty((0, dimension), dtype=np.float32)
        self.n = 0
        self.last_id = 0

    def reserve(self, rows: int) -> None:
        """Room for ``rows`` more without a copy (a first load knows how many)."""
        self._grow(self.n + rows, exact=True)

    def extend(self, ids: Sequence[int], blobs: Sequence[bytes]) -> None:
        if not ids:
            return
        new = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(ids), -1)
        need = self.n + len(ids)
        self._grow(need)
        self.matrix[self.n : need] = new
        self.ids[self.n : need] = ids
        self.n = need
        self.last_id = int(ids[-1])

    def _grow(self, need: int, exact: bool = False) -> None:
        if need > len(self.ids):
            # A quarter to spare when appending, so that appends rarely copy.
            capacity = need if exact else max(need, self.n + self.n // 4, self.n + 256)
            matrix = np.empty((capacity, self.matrix.shape[1]), dtype=np.float32)
            matrix[: self.n] = self.matrix[: self.n]
            row_ids = np.empty(capacity, dtype=np.int64)
            row_ids[: self.n] = self.ids[: self.n]
            self.matrix, self.ids = matrix, row_ids

    def top(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The ``k`` best (row id, cosine score) pairs, unordered."""
        if self.n == 0 or k <= 0:
            return []
        scores = self.matrix[: self.n] @ query
        k = min(k, self.n)
        best = np.argpartition(scores, self.n - k)[self.n - k :]
        return [(int(self.ids[i]), float(scores[i])) for i in best]

    @property
    def nbytes(self) -> int:
        return int(self.matrix.nbytes + self.ids.nbytes)


def as_query(vector: Sequence[float]) -> np.ndarray:
    query = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(query))
    return query / norm if norm else query
