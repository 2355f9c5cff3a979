"""A principal's mandate: what its agent may sell and buy, and under which limits.

Loaded from YAML or JSON with `load_mandate(path)`. Validation errors name the
field they are about (`items[2].floor_cents: floor above asking price`), so a
person fixing a mandate file knows where to look. Money is integer cents.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from haggle.contracts.envelope import Message
from haggle.contracts.goods import Condition, Dimensions, Item, ShippingOption, shipping_refusal
from haggle.contracts.listing import CreateListing
from haggle.contracts.types import MAX_PRICE_CENTS, Cents, Grams, Id

_STRICT = ConfigDict(frozen=True, extra="forbid")


class StrategyName(StrEnum):
    BOULWARE = "boulware"
    LINEAR = "linear"
    CONCEDER = "conceder"
    TIT_FOR_TAT = "tit_for_tat"
    FIXED_ANCHOR = "fixed_anchor"


class StrategyParams(BaseModel):
    """Knobs of the literature strategies; every one has a sensible default."""

    model_config = _STRICT
    seed: int = 0
    e: float | None = Field(default=None, gt=0, le=100, description="concession exponent; None: by name")
    opening_fraction: float = Field(default=0.6, gt=0, le=1, description="buyer opens at this share")
    anchor_fraction: float = Field(default=0.5, ge=0, le=1, description="fixed_anchor: where it anchors")
    step_fraction: float = Field(default=0.02, ge=0, le=1, description="fixed_anchor/tit_for_tat step")
    noise: float = Field(default=0.0, ge=0, le=0.2, description="seeded jitter on the concession curve")


class StrategyBrainConfig(BaseModel):
    model_config = _STRICT
    kind: Literal["strategy"]
    name: StrategyName
    params: StrategyParams = StrategyParams()


class ClaudeBrainConfig(BaseModel):
    model_config = _STRICT
    kind: Literal["claude"]
    model: str = Field(min_length=1, max_length=100)
    style: str = Field(default="polite, concise and firm", max_length=500)
    max_tokens: int = Field(default=1_024, ge=64, le=8_192)
    token_budget: int | None = Field(
        default=None, ge=1, description="tokens this principal's model may use in all; None: no cap"
    )


class OpenAIBrainConfig(BaseModel):
    """Any OpenAI-compatible Chat Completions endpoint; the key comes from `OPENAI_API_KEY`, never here."""

    model_config = _STRICT
    kind: Literal["openai"]
    model: str = Field(min_length=1, max_length=100)
    base_url: str | None = Field(default=None, max_length=300, pattern=r"^https?://")
    style: str = Field(default="polite, concise and firm", max_length=500)
    max_tokens: int = Field(default=1_024, ge=64, le=8_192)
    token_budget: int | None = Field(
        default=None, ge=1, description="tokens this principal's model may use in all; None: no cap"
    )


class NarratorBrainConfig(BaseModel):
    """A strategy makes the move; a model only writes the words, and never sees a private number."""

    model_config = _STRICT
    kind: Literal["narrator"]
    model: str = Field(min_length=1, max_length=100)
    provider: Literal["anthropic", "openai"] = "anthropic"
    base_url: str | None = Field(default=None, max_length=300, pattern=r"^https?://")
    strategy: StrategyName = StrategyName.BOULWARE
    params: StrategyParams = StrategyParams()
    style: str = Field(default="polite, concise and firm", max_length=500)
    max_tokens: int = Field(default=256, ge=32, le=2_048)
    token_budget: int | None = Field(
        default=None, ge=1, description="tokens this principal's model may use in all; None: no cap"
    )


class CompromisedBrainConfig(BaseModel):
    """A red-team fixture: a brain that always proposes the worst move for its principal.

    It exists to prove the guard: an agent running it must still never break its mandate.
    """

    model_config = _STRICT
    kind: Literal["compromised"]
    seed: int = 0
    variety: bool = Field(default=False, description="also try malformed and hostile non-moves")


class ExternalBrainConfig(BaseModel):
    """The brain is an agent we do not run: it trades through the agent gateway (services/gateway).

    The agents service leaves such a mandate alone; the gateway checks every move it is sent
    with the same mandate guard. The external agent proves who it is in one of two ways: an API
    key whose sha256 is given here (the gateway keeps the agent's signing key and signs for it;
    the API key itself never travels on a topic), or its own Ed25519 `public_key` (it signs
    its registration and every command itself, and the gateway forwards them unchanged)."""

    model_config = _STRICT
    kind: Literal["external"]
    api_key_sha256: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$", description="sha256 hex of the agent's API key"
    )
    public_key: str | None = Field(
        default=None, min_length=40, max_length=64, description="the agent's own Ed25519 key, urlsafe base64"
    )
    label: str = Field(default="external", max_length=64, description="names the agent in audits")

    @model_validator(mode="after")
    def _one_credential(self) -> ExternalBrainConfig:
        if (self.api_key_sha256 is None) == (self.public_key is None):
            raise PydanticCustomError("external", "give exactly one of api_key_sha256 and public_key")
        return self


BrainConfig = Annotated[
    StrategyBrainConfig
    | ClaudeBrainConfig
    | OpenAIBrainConfig
    | NarratorBrainConfig
    | CompromisedBrainConfig
    | ExternalBrainConfig,
    Field(discriminator="kind"),
]


def _money_error(value: int, what: str) -> None:
    if value <= 0:
        raise PydanticCustomError("money", "{what} must be a positive number of cents", {"what": what})
    if value > MAX_PRICE_CENTS:
        raise PydanticCustomError("money", "{what} above {cap} cents", {"what": what, "cap": MAX_PRICE_CENTS})


class SellItem(BaseModel):
    """One item to sell. `true_condition` differs from `condition` only to simulate misdescription."""

    model_config = _STRICT
    id: Id
    title: str = Field(min_length=5, max_length=120)
    description: str = Field(default="", max_length=5_000)
    category: str = Field(min_length=1, max_length=64)
    condition: Condition
    true_condition: Condition | None = Field(default=None, validate_default=True)
    weight_g: Grams = Field(gt=0, le=2_000_000)
    dimensions: Dimensions
    shipping: tuple[ShippingOption, ...] = Field(min_length=1, max_length=16)
    asking_price_cents: Cents
    floor_cents: Cents

    @field_validator("true_condition")
    @classmethod
    def _default_true_condition(cls, value: Condition | None, info: ValidationInfo) -> Condition | None:
        return value if value is not None else info.data.get("condition")

    @field_validator("shipping")
    @classmethod
    def _shipping_feasible(
        cls, value: tuple[ShippingOption, ...], info: ValidationInfo
    ) -> tuple[ShippingOption, ...]:
        methods = [option.method for option in value]
        if len(set(methods)) != len(methods):
            raise PydanticCustomError("shipping", "a shipping method is listed twice")
        weight, dims = info.data.get("weight_g"), info.data.get("dimensions")
        if weight is None or dims is None:
            return value
        item = Item(weight_g=weight, dimensions=dims)
        for option in value:
            if option.cost_cents < 0:
                raise PydanticCustomError("shipping", "{m}: negative cost", {"m": option.method.value})
            if why := shipping_refusal(option.method, item):
                raise PydanticCustomError(
                    "shipping", "{m} cannot carry it: {why}", {"m": option.method.value, "why": why}
                )
        return value

    @field_validator("asking_price_cents")
    @classmethod
    def _asking_positive(cls, value: int) -> int:
        _money_error(value, "asking price")
        return value

    @field_validator("floor_cents")
    @classmethod
    def _floor_below_asking(cls, value: int, info: ValidationInfo) -> int:
        _money_error(value, "floor")
        asking = info.data.get("asking_price_cents")
        if asking is not None and value > asking:
            raise PydanticCustomError("floor", "floor above asking price")
        return value

    @property
    def item(self) -> Item:
        return Item(weight_g=self.weight_g, dimensions=self.dimensions)

    def to_listing(self, listing_id: str, seller_agent_id: str, seller_principal_id: str) -> CreateListing:
        """The listing command for this item. The floor never leaves the agent."""
        return CreateListing(
            listing_id=listing_id,
            seller_agent_id=seller_agent_id,
            seller_principal_id=seller_principal_id,
            title=self.title,
            description=self.description,
            category=self.category,
            condition=self.condition,
            price_cents=self.asking_price_cents,
            item=self.item,
            shipping=self.shipping,
        )


class Want(BaseModel):
    """Something to buy: matched by title keywords and/or category, never above its private max."""

    model_config = _STRICT
    id: Id
    keywords: tuple[str, ...] = Field(default=(), max_length=20)
    category: str | None = Field(default=None, min_length=1, max_length=64, validate_default=True)
    min_condition: Condition = Condition.ACCEPTABLE
    max_price_cents: Cents = Field(description="private: the most this principal pays, shipping included")
    quantity: Literal[1] = 1

    @field_validator("keywords")
    @classmethod
    def _clean_keywords(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(word.strip().lower() for word in value)
        if any(not word or len(word) > 40 for word in cleaned):
            raise PydanticCustomError("keywords", "keywords must be 1..40 characters")
        return cleaned

    @field_validator("category")
    @classmethod
    def _something_to_match(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and not info.data.get("keywords"):
            raise PydanticCustomError("want", "give keywords, a category, or both")
        return value

    @field_validator("max_price_cents")
    @classmethod
    def _max_positive(cls, value: int) -> int:
        _money_error(value, "max price")
        return value

    def matches(self, title: str, category: str) -> bool:
        """Whether a listing is a candidate. Condition is checked against the enum, elsewhere."""
        if self.category is not None and self.category != category:
            return False
        lowered = title.lower()
        return all(word in lowered for word in self.keywords)


class Mandate(BaseModel):
    model_config = _STRICT
    principal_id: Id
    owner_id: Id | None = None
    budget_cents: Cents
    auto_approve_limit_cents: Cents
    brain: BrainConfig
    items: tuple[SellItem, ...] = Field(default=(), max_length=1_000)
    wants: tuple[Want, ...] = Field(default=(), max_length=1_000)
    inspects_goods: bool = False
    """The principal inspects what arrives: their agent still disputes a condition worse than the
    listing's, but never accepts the goods for them, so the inspection window is theirs (it passes
    by itself at its end). A person through the web app does by default; a simulated one does not."""

    @field_validator("budget_cents", "auto_approve_limit_cents")
    @classmethod
    def _not_negative(cls, value: int) -> int:
        if value < 0 or value > MAX_PRICE_CENTS:
            raise PydanticCustomError("money", "must be 0..{cap} cents", {"cap": MAX_PRICE_CENTS})
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> Mandate:
        if problems := self.problems():
            raise PydanticCustomError(
                "mandate", "{joined}", {"joined": "; ".join(problems), "problems": problems}
            )
        return self

    def problems(self) -> list[str]:
        """Rules across fields, each reported with the path of the field at fault."""
        found = _duplicates([item.id for item in self.items], "items")
        found += _duplicates([want.id for want in self.wants], "wants")
        for index, want in enumerate(self.wants):
            if want.max_price_cents > self.budget_cents:
                found.append(f"wants[{index}].max_price_cents: max price above the budget")
        return found

    def item(self, item_id: str) -> SellItem:
        return next(item for item in self.items if item.id == item_id)

    def want(self, want_id: str) -> Want:
        return next(want for want in self.wants if want.id == want_id)

    def categories_wanted(self) -> frozenset[str] | None:
        """The listing categories some want could match (`Want.matches`); None when a want takes a
        listing of any category. A store filters on it without reading the wants."""
        if any(want.category is None for want in self.wants):
            return None
        return frozenset(want.category for want in self.wants if want.category is not None)


def _duplicates(ids: list[str], field: str) -> list[str]:
    seen: set[str] = set()
    found = []
    for index, one in enumerate(ids):
        if one in seen:
            found.append(f"{field}[{index}].id: id {one} used twice")
        seen.add(one)
    return found


class MandateError(ValueError):
    """A mandate file that cannot be used; `problems` are `field.path: message` lines."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.problems = problems


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in ("strategy", "claude", "openai", "narrator", "compromised") and path.endswith("brain"):
            continue  # the union's tag adds nothing for a reader
        else:
            path += f".{part}" if path else str(part)
    return path or "(mandate)"


def parse_mandate(data: Any, source: str = "mandate") -> Mandate:
    try:
        return Mandate.model_validate(data)
    except ValidationError as exc:
        problems: list[str] = []
        for err in exc.errors():
            if err["type"] == "mandate":
                problems += err.get("ctx", {}).get("problems", [err["msg"]])
            else:
                problems.append(f"{_field_path(err['loc'])}: {err['msg']}")
        raise MandateError(source, problems) from None


def load_mandate(path: str | Path) -> Mandate:
    """Read a mandate from a .yaml/.yml or .json file."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            raise MandateError(str(path), [f"(file): unknown extension {path.suffix!r}, want .yaml or .json"])
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise MandateError(str(path), [f"(file): not valid {path.suffix[1:]}: {exc}"]) from None
    return parse_mandate(data, str(path))


AMENDABLE = ("auto_approve_limit_cents", "wants[].max_price_cents", "wants[].min_condition")
"""What a principal may change once their agent runs; everything else stays as first assigned."""


def amendment_problems(old: Mandate, new: Mandate) -> list[str]:
    """Why `new` is no amendment of `old` (empty: it is), each problem with the field's path.

    Only the auto-approve limit and each want's max price and minimum condition may change: the
    agent's identity, its brain, its budget, what it sells and what each want is stay fixed."""
    found = [
        f"{name}: cannot change once the agent runs"
        for name in Mandate.model_fields
        if name not in ("wants", "auto_approve_limit_cents") and getattr(old, name) != getattr(new, name)
    ]
    if [w.id for w in old.wants] != [w.id for w in new.wants]:
        return [*found, "wants: wants cannot be added, removed or reordered"]
    for index, (was, now) in enumerate(zip(old.wants, new.wants, strict=True)):
        kept = now.model_copy(
            update={"max_price_cents": was.max_price_cents, "min_condition": was.min_condition}
        )
        if kept != was:
            found.append(f"wants[{index}]: only the max price and minimum condition may change")
    return found


class AssignMandate(Message):
    """mandate.commands (key principal_id): start, or keep running, the agent of one principal.

    A second one for the same principal is an amendment: applied when `amendment_problems`
    finds none, ignored otherwise."""

    type: Literal["AssignMandate"] = "AssignMandate"
    mandate: Mandate
    variant: str = Field(default="default", max_length=64)


MANDATE_COMMANDS: tuple[type[Message], ...] = (AssignMandate,)
