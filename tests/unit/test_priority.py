"""Background work yields the CPU: reader threads and the model process run at a lower
priority, under the idle scheduling policy in the app."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from albumtagger import priority
from albumtagger.config import load_settings
from albumtagger.model.encoder_process import EncoderProcess

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="per-thread priorities")


@pytest.fixture
def idle_policy():
    priority.use_idle_policy(True)
    yield
    priority.use_idle_policy(False)


def in_thread(work):
    out: list = []
    t = threading.Thread(target=lambda: out.append(work()))
    t.start()
    t.join()
    return out[0]


def test_a_thread_is_lowered_once() -> None:
    def work():
        tid = threading.get_native_id()
        before = os.getpriority(os.PRIO_PROCESS, tid)
        priority.lower_this_thread()
        priority.lower_this_thread()  # a pool thread runs many jobs: once is enough
        return before, os.getpriority(os.PRIO_PROCESS, tid), os.sched_getscheduler(tid)

    before, after, policy = in_thread(work)
    assert after == min(19, before + priority.NICENESS)
    assert policy == os.SCHED_OTHER
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before  # not ours


def test_the_idle_policy(idle_policy) -> None:
    def work():
        priority.lower_this_thread()
        inner = in_thread(lambda: os.sched_getscheduler(threading.get_native_id()))
        return os.sched_getscheduler(threading.get_native_id()), inner

    assert in_thread(work) == (os.SCHED_IDLE, os.SCHED_IDLE)  # threads it starts inherit it
    assert os.sched_getscheduler(threading.get_native_id()) == os.SCHED_OTHER


def test_the_apps_model_process_runs_under_the_idle_policy(golden_env, idle_policy) -> None:
    encoder = EncoderProcess(load_settings())
    try:
        pid = encoder._process.pid
        tasks = os.listdir(f"/proc/{pid}/task")  # PyTorch's threads too
        assert len(tasks) > 1
        assert {os.sched_getscheduler(int(t)) for t in tasks} == {os.SCHED_IDLE}
        assert encoder.embed_texts(["a dog"]).shape[0] == 1
    finally:
        encoder.close()
