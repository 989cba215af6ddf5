"""Per-token prices, from the table shipped with the package and the character's settings.

Read from a small JSON file, not from litellm, which takes seconds to import.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from aigent import PluginError

Price = tuple[float, float]  # USD per input token, per output token


@functools.cache
def shipped() -> dict[str, Price]:
    data = json.loads(resources.files(__package__).joinpath("prices.json").read_text("utf-8"))
    return {model: (float(p[0]), float(p[1])) for model, p in data["prices"].items()}


def price_of(model_id: str, wire_model: str, settings: Any) -> Price | None:
    """The price of ``model_id`` (``provider/model``): ``settings.openai.prices`` first, by
    the whole id or by the name sent on the wire, then the shipped table; None if unknown."""
    own = _own_prices(settings)
    return own.get(model_id) or own.get(wire_model) or shipped().get(model_id)


def cost(price: Price, prompt_tokens: int, completion_tokens: int) -> float:
    return prompt_tokens * price[0] + completion_tokens * price[1]


def _own_prices(settings: Any) -> dict[str, Price]:
    if settings is None:
        return {}
    if not isinstance(settings, dict):
        raise _bad("must be an object mapping model names to [input, output] prices")
    out = {}
    for model, pair in settings.items():
        if (
            not isinstance(pair, list | tuple)
            or len(pair) != 2
            or not all(isinstance(p, int | float) and not isinstance(p, bool) for p in pair)
            or min(pair) < 0
        ):
            raise _bad(
                f"{model!r} must be [input_per_token, output_per_token] in USD, "
                f"e.g. [1.5e-07, 6e-07]; got {pair!r}"
            )
        out[str(model)] = (float(pair[0]), float(pair[1]))
    return out


def _bad(what: str) -> PluginError:
    return PluginError("openai", f"settings.openai.prices: {what}")
