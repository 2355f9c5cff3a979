"""The agents' toolkit: what one app's handlers share, with nothing shared between apps."""

from __future__ import annotations

from pathlib import Path

from haggle.contracts import AgentKey
from haggle.contracts.mandate import BrainConfig
from haggle.runtime.settings import Settings
from services.agents.brains import Brain, build_brain
from services.agents.domain import Principal
from services.agents.handlers.common import Toolkit
from services.agents.mandate import load_mandate

SELLER = load_mandate(Path(__file__).resolve().parents[2] / "examples" / "mandates" / "seller.yaml")


def principal(pid: str) -> Principal:
    mandate = SELLER.model_copy(update={"principal_id": pid})
    return Principal(pid, "m", f"{pid}.agent", "v", mandate, AgentKey.generate(), True, 0)


def test_each_principal_gets_its_brain_built_once_per_app() -> None:
    built: list[BrainConfig] = []

    def counting(config: BrainConfig) -> Brain:
        built.append(config)
        return build_brain(config)

    tools = Toolkit.from_settings(Settings())
    tools.build_brain = counting
    alice, bob = principal("alice"), principal("bob")
    assert tools.brain_for(alice) is tools.brain_for(alice)
    assert tools.brain_for(bob) is not tools.brain_for(alice)
    assert len(built) == 2


def test_two_apps_share_no_brain_and_no_rate_limit() -> None:
    one, two = Toolkit.from_settings(Settings()), Toolkit.from_settings(Settings())
    alice = principal("alice")
    assert one.brain_for(alice) is not two.brain_for(alice)
    assert one.limiter is not two.limiter
