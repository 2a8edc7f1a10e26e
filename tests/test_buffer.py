"""RecordBuffer: eager checks for arrays, one host copy per batch of tensors, order kept, rank-aware state."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hardmine import RecordBuffer


def _refuse_big(ids: np.ndarray, indices: np.ndarray | None) -> None:
    if ids.size and ids.max() >= 100:
        raise ValueError(f"sample id {int(ids.max())} is outside 0..99")


@settings(max_examples=40, deadline=None)
@given(blocks=st.lists(st.tuples(st.lists(st.integers(0, 99), max_size=6), st.booleans(), st.booleans()),
                       max_size=40))
def test_records_come_back_in_recording_order_whatever_their_type(blocks: list) -> None:
    """Lists, arrays and tensors interleaved: the gather yields them in the order they were recorded."""
    buf = RecordBuffer(check=_refuse_big, flush_every=3)
    want_ids: list[int] = []
    want_idx: list[int] = []
    for ids, as_tensor, with_index in blocks:
        losses = [i / 10 for i in ids]
        index = [i % 7 for i in ids] if with_index else None
        if as_tensor:
            buf.add(torch.tensor(ids, dtype=torch.int64), torch.tensor(losses),
                    None if index is None else torch.tensor(index, dtype=torch.int64))
        else:
            buf.add(np.array(ids, dtype=np.int64), losses, index)
        want_ids += ids
        want_idx += index if index is not None else [-1] * len(ids)
    assert len(buf) == len(want_ids)
    got = buf.gather()
    assert got.ids.tolist() == want_ids and len(buf) == 0
    np.testing.assert_allclose(got.losses, [i / 10 for i in want_ids], rtol=1e-6)
    if any(i >= 0 for i in want_idx):
        assert got.indices is not None and got.indices.tolist() == want_idx
    else:
        assert got.indices is None


def test_arrays_are_checked_at_once_and_tensors_at_their_flush() -> None:
    buf = RecordBuffer(check=_refuse_big, flush_every=2)
    with pytest.raises(ValueError, match="same length"):
        buf.add([1, 2], [1.0])
    with pytest.raises(ValueError, match="sample id 100 is outside"):
        buf.add([100], [1.0])
    assert len(buf) == 0
    buf.add(torch.tensor([5]), torch.tensor([1.0]))  # kept as a tensor: nothing checked yet
    with pytest.raises(ValueError, match="sample id 300 is outside"):
        buf.add(torch.tensor([300]), torch.tensor([1.0]))  # the second block flushes both
    with pytest.raises(ValueError, match="same length"):
        buf.add(torch.tensor([1, 2]), torch.tensor([1.0]))


def test_state_round_trip_keeps_pending_tensors() -> None:
    buf = RecordBuffer()
    buf.add([1, 2], [0.5, 0.25], [3, 4])
    buf.add(torch.tensor([9]), torch.tensor([2.0]))
    again = RecordBuffer()
    again.load_state_dict(buf.state_dict())
    a, b = buf.local(), again.local()
    assert a.ids.tolist() == b.ids.tolist() == [1, 2, 9]
    assert b.indices is not None and b.indices.tolist() == [3, 4, -1]
    np.testing.assert_array_equal(a.losses.astype(np.float64), b.losses)


def test_a_checkpoint_of_another_world_size_goes_to_rank_zero_with_a_warning() -> None:
    state = {"kind": "RecordBuffer", "version": 1, "world_size": 2, "ranks": [0, 1], "sizes": np.array([2, 1]),
             "ids": np.array([1, 2, 3]), "losses": np.array([0.1, 0.2, 0.3]), "indices": np.array([-1, -1, -1])}
    buf = RecordBuffer()
    with pytest.warns(UserWarning, match="saved by 2 process.*resumed by 1"):
        buf.load_state_dict(state)
    got = buf.local()
    assert got.ids.tolist() == [1, 2, 3] and got.indices is None
    with pytest.raises(ValueError, match="inconsistent"):
        buf.load_state_dict({**state, "sizes": np.array([2, 2])})
