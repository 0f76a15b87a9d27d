"""The estimate of when a library has tags and when it is refined, against the truth: a
500-photo folder, the golden model slowed to a cost per image token, a session driven
as the app's worker drives it (the index job, then watch steps that refine)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from albumtagger.config import load_settings, replace_section
from albumtagger.events import Event, JobProgress
from albumtagger.model.loading import load_encoder
from albumtagger.service.session import LibrarySession
from tests.conftest import make_photo

N = 500
SECONDS_PER_TOKEN = 0.005
"""The slowed model's cost: 20 ms a photo at the first pass (4 tokens), 80 ms refined
(16 tokens)."""
TOLERANCE = 0.25


class SlowEncoder:
    """The golden encoder, a batch taking `SECONDS_PER_TOKEN` per image token: the tiny
    model's own time (about 10 ms a photo, mostly not the image tokens') is made up to
    that with a sleep."""

    def __init__(self, encoder: object) -> None:
        self._encoder = encoder

    def __getattr__(self, name: str) -> object:
        return getattr(self._encoder, name)

    def embed_prepared(self, images, *args, **kwargs):
        end = time.monotonic() + SECONDS_PER_TOKEN * sum(im.n_tokens for im in images)
        vectors = self._encoder.embed_prepared(images, *args, **kwargs)
        time.sleep(max(0.0, end - time.monotonic()))
        return vectors


@pytest.fixture
def album(tmp_path: Path) -> Path:
    root = tmp_path / "album"
    for i in range(N):  # 112 x 112: 4 tokens at the first pass's budget, 16 at the full
        make_photo(root / f"p{i:03d}.jpg", seed=i, size=(112, 112))
    return root


@pytest.fixture
def one_thread():
    """The tiny model on one thread: on a busy machine a forward on two threads waits
    for the slower one at every step, and its time would no longer be the slowed one."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_time_to_tags_and_to_refined_within_a_quarter(
    album: Path, golden_env: dict, tmp_path: Path, one_thread: None
) -> None:
    settings = replace_section(load_settings(), "model", coarse_first="on", first_pass_tokens=4)
    events: list[tuple[float, Event]] = []
    with LibrarySession(
        album,
        settings,
        data_dir=tmp_path / "data",
        on_event=lambda ev: events.append((time.monotonic(), ev)),
        encoder=SlowEncoder(load_encoder(settings)),
        backup=False,
    ) as session:
        for _ in session.index():
            pass
        deadline = time.monotonic() + 180
        while session._keeper is None or session._keeper.summary.refined < N:
            assert time.monotonic() < deadline, "the refinement did not finish"
            session.watch_step(0.25)
    progress = [(t, ev) for t, ev in events if isinstance(ev, JobProgress) and not ev.finished]
    first = [(t, ev) for t, ev in progress if ev.phase == "first pass"]
    refine = [(t, ev) for t, ev in progress if ev.phase == "refine"]
    # the estimate once a fifth of the first pass is done
    at, early = next((t, ev) for t, ev in first if ev.done >= 0.2 * N)
    assert early.tags_eta_s is not None and early.refined_eta_s is not None
    tags_at = next(t for t, ev in first if ev.done == ev.total == N)
    refined_at = next(t for t, ev in refine if ev.done == ev.total == N)
    actual_tags, actual_refined = tags_at - at, refined_at - at
    print(
        f"after {early.done}/{N}: tags estimated {early.tags_eta_s:.1f} s, "
        f"took {actual_tags:.1f} s; refined estimated {early.refined_eta_s:.1f} s, "
        f"took {actual_refined:.1f} s"
    )
    assert early.tags_eta_s == pytest.approx(actual_tags, rel=TOLERANCE)
    assert early.refined_eta_s == pytest.approx(actual_refined, rel=TOLERANCE)
    # while refining, first-pass tags are there and the estimate goes down to nothing
    assert all(ev.tags_eta_s == 0 for _, ev in refine)
    assert refine[-1][1].refined_eta_s == 0
