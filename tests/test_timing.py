"""One definition of test time per image: the median of synchronised calls, detectors interleaved."""

import warnings

import pytest
import torch

from fastrcnn_lite import timing


class FakeClock:
    """perf_counter that advances only when a fake detector 'works'."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_time_per_image_is_the_median_and_interleaves(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(timing.time, "perf_counter", clock)
    calls = []
    costs = {"a": iter([9.0, 1.0, 2.0, 30.0, 3.0]), "b": iter([9.0, 5.0, 5.0, 5.0, 6.0])}

    def make(name):
        def detect(image, proposals):
            calls.append(name)
            clock.now += next(costs[name])
            return {"boxes": proposals}

        return detect

    samples = [(torch.zeros(3, 4, 4), torch.zeros(1, 4))] * 2
    result = timing.time_per_image({"a": make("a"), "b": make("b")}, samples, repeats=2, warmup=1)
    assert calls == ["a", "b"] * 5  # warm-up, then A, B, A, B, ... image by image
    # a: 1, 2, 30, 3 -> median 2.5 (the slow outlier does not move it); b: 5, 5, 5, 6 -> 5
    assert result == {"a": 2.5, "b": 5.0}


def test_median_seconds_runs_warmup_untimed(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(timing.time, "perf_counter", clock)
    costs = iter([100.0, 1.0, 4.0, 2.0])

    def step():
        clock.now += next(costs)

    assert timing.median_seconds(step, repeats=3, warmup=1) == 2.0


def test_timed_call_returns_result_and_synchronises_cuda(monkeypatch):
    synced = []
    monkeypatch.setattr(timing.torch.cuda, "synchronize", lambda device=None: synced.append(device))
    result, seconds = timing.timed_call(lambda x: x + 1, 1, device="cuda")
    assert result == 2 and seconds >= 0 and len(synced) == 2
    timing.timed_call(lambda: None, device="cpu")
    assert len(synced) == 2  # the CPU needs no synchronisation


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="detectors is empty"):
        timing.time_per_image({}, [])
    with pytest.raises(ValueError, match="samples is empty"):
        timing.time_per_image({"a": lambda i, p: None}, [])
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        timing.median_seconds(lambda: None, repeats=0)


def test_a_busy_machine_is_warned_about_and_an_idle_one_is_not(monkeypatch):
    monkeypatch.setattr(timing.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(timing.os, "getloadavg", lambda: (3.5, 1.0, 1.0))
    with pytest.warns(timing.BusyMachineWarning, match=r"load average 3.5 on 2 CPUs"):
        assert timing.warn_if_busy() == 3.5
    with pytest.warns(timing.BusyMachineWarning, match="test time per image"):
        timing.time_per_image({"a": lambda im, p: None}, [(torch.zeros(1), torch.zeros(0, 4))])
    monkeypatch.setattr(timing.os, "getloadavg", lambda: (1.9, 1.0, 1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert timing.warn_if_busy() == 1.9
        timing.median_seconds(lambda: None, repeats=1)


def test_timed_detections_times_the_detector_alone(monkeypatch):
    """Decoding (in the samples) and keep (after the call) are outside the clock; the figure is
    the median of the timed calls, after the warm-up on the first image."""
    clock = FakeClock()
    monkeypatch.setattr(timing.time, "perf_counter", clock)
    monkeypatch.setattr(timing.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    costs = iter([50.0, 1.0, 3.0, 2.0])  # warm-up, then the three images

    def samples():
        for i in range(3):
            clock.now += 100.0  # decoding an image: not timed
            yield torch.full((3, 2, 2), float(i)), torch.zeros(1, 4)

    def detect(image, proposals):
        clock.now += next(costs)
        return {"first": image[0, 0, 0]}

    def keep(det):
        clock.now += 1000.0  # a copy to the CPU: not timed
        return int(det["first"])

    results, seconds = timing.timed_detections(detect, samples(), warmup=1, keep=keep)
    assert results == [0, 1, 2]  # one result per sample, in order, the warm-up's not kept
    assert seconds == 2.0  # median of 1, 3, 2
    assert timing.timed_detections(detect, []) == ([], 0.0)
    with pytest.raises(ValueError, match="warmup must be >= 0"):
        timing.timed_detections(detect, [], warmup=-1)
