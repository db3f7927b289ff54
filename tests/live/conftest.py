from __future__ import annotations

from collections.abc import Iterator

import pytest

from laptop_agents.testing.fake_exchange import FakeExchangeHandle, start_fake_exchange


@pytest.fixture
def fake() -> Iterator[FakeExchangeHandle]:
    handle = start_fake_exchange(seed=7, speed=600.0, push_interval_s=0.05, epoch_ts=0)
    try:
        yield handle
    finally:
        handle.stop()
