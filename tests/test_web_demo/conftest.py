# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Fixtures of the web-demo tests: a backbone call counter (the random
``tiny_checkpoint`` and the trained ``shapesworld_model`` are shared, in
tests/conftest.py)."""
import pytest


class BackboneCalls:
    """Counts the vision-encoder forwards of a model (a forward hook)."""

    def __init__(self, model) -> None:
        self.count = 0
        self._handle = model.backbone.register_forward_hook(self._hook)

    def _hook(self, module, args, output) -> None:
        self.count += 1

    def remove(self) -> None:
        self._handle.remove()


@pytest.fixture
def backbone_calls():
    """``backbone_calls(model)`` -> a :class:`BackboneCalls`, removed at
    the end of the test."""
    counters = []

    def attach(model) -> BackboneCalls:
        counters.append(BackboneCalls(model))
        return counters[-1]

    yield attach
    for counter in counters:
        counter.remove()
