"""Shared by the examples: the real service when EATTEST_* is set, else the simulator."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import eattest_async as ea
from eattest_async.simulator import Simulator


@asynccontextmanager
async def connect(**simulator_options: Any) -> AsyncIterator[ea.Client]:
    if os.environ.get("EATTEST_USERNAME"):
        environment = (
            ea.Environment.PROD if os.environ.get("EATTEST_ENV") == "prod" else ea.Environment.TEST
        )
        async with ea.Client(
            environment,
            username=os.environ["EATTEST_USERNAME"],
            password=os.environ["EATTEST_PASSWORD"],
        ) as client:
            yield client
        return
    async with (
        Simulator(**simulator_options) as sim,
        ea.Client(sim.environment, username=sim.username, password=sim.password) as client,
    ):
        yield client
