"""A chunk's done flag is written only after all of its data (issue 15).

A data write that fails must leave the chunk marked not done, so a rerun recomputes it;
a flag written before its data would pass every other test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import experiments.runner as runner
from experiments.store import DONE, ChunkWriter, done_mask

from .test_store import SMALL, load, quiet


class _FailingGroup:
    """A zarr group proxy whose data arrays raise on write; the done array works."""

    def __init__(self, group: Any) -> None:
        self._group = group

    def __getitem__(self, name: str) -> Any:
        array = self._group[name]
        return array if name == DONE else _FailingArray()


class _FailingArray:
    ndim = 5

    def __setitem__(self, key: Any, value: Any) -> None:
        raise OSError("injected data write failure")


def test_a_failing_data_write_leaves_the_chunk_not_done(tmp_path: Path, monkeypatch) -> None:
    seen: list[int] = []
    rng = np.random.default_rng()
    fail_at = int(rng.integers(0, 2))  # fail on the first or second chunk written

    class FailingWriter(ChunkWriter):
        def write(self, chunk, results):  # type: ignore[no-untyped-def]
            if len(seen) == fail_at:
                seen.append(chunk.index)
                real = self.group
                self.group = _FailingGroup(real)
                try:
                    super().write(chunk, results)
                finally:
                    self.group = real
            else:
                seen.append(chunk.index)
                super().write(chunk, results)

    monkeypatch.setattr(runner, "ChunkWriter", FailingWriter)
    path = tmp_path / "s.zarr"
    with pytest.raises(OSError, match="injected"):
        quiet(load(SMALL), path, workers=1)
    done = done_mask(path)
    failed = seen[fail_at]
    assert not done[failed]
    assert done.sum() == fail_at
    assert set(np.flatnonzero(done)) == set(seen[:fail_at])
