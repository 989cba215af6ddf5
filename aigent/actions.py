"""Actions: tools the model may call, made from typed Python functions."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, get_type_hints

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from aigent import blocking
from aigent.messages import ToolSpec

MOVES_VALUE = "__aigent_moves_value__"
F = TypeVar("F", bound=Callable[..., Any])


def moves_value(fn: F) -> F:
    """Mark an action function as one that moves value (pays, mints, transfers, funds)::

        @moves_value
        async def pay(to: str, amount: int) -> str: ...

    Such actions are offered to the model only for messages from channels the character
    allows to spend (``spend_from``: the terminal and apps by default), never for a post on X
    or a paid message, say."""
    setattr(fn, MOVES_VALUE, True)
    return fn


@dataclass
class Action:
    """A callable the model may invoke, with a JSON schema for its arguments.

    Build one from a function with :meth:`from_function` (what ``register(fn)`` does): the name
    is the function's, the description its docstring, the schema comes from its type hints.
    A single pydantic-model parameter is taken as the whole argument object.
    """

    name: str
    description: str
    fn: Callable[..., Any]
    arguments_model: type[BaseModel]
    timeout: float = 30.0
    plugin: str = ""
    moves_value: bool = False
    """It pays, mints, transfers or funds: offered only on the channels the character lets
    spend (``spend_from``), and run only for a message from one of them."""
    _unwrap: str | None = field(default=None, repr=False)

    @classmethod
    def from_function(
        cls,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        timeout: float = 30.0,
        moves_value: bool | None = None,
    ) -> Action:
        hints = get_type_hints(fn, include_extras=True)
        params = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        action_name = name or fn.__name__
        unwrap = None
        if len(params) == 1 and _is_model(hints.get(params[0].name)):
            model = hints[params[0].name]
            unwrap = params[0].name
        else:
            fields: dict[str, Any] = {}
            for p in params:
                annotation = hints.get(p.name, Any)
                default = ... if p.default is inspect.Parameter.empty else p.default
                fields[p.name] = (annotation, default)
            model = create_model(
                f"{action_name}_arguments",
                __config__=ConfigDict(extra="forbid"),
                **fields,
            )
        return cls(
            name=action_name,
            description=inspect.cleandoc(fn.__doc__ or "").strip(),
            fn=fn,
            arguments_model=model,
            timeout=timeout,
            moves_value=bool(
                getattr(fn, MOVES_VALUE, False) if moves_value is None else moves_value
            ),
            _unwrap=unwrap,
        )

    def spec(self) -> ToolSpec:
        schema = self.arguments_model.model_json_schema()
        schema.pop("title", None)
        return ToolSpec(name=self.name, description=self.description, parameters=schema)

    async def run(self, arguments: dict[str, Any]) -> str:
        """Validate ``arguments``, call the function (threads for sync ones), return text.

        Raises ``ValueError`` with a message meant for the model when the arguments are wrong.
        """
        try:
            parsed = self.arguments_model.model_validate(arguments)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                for e in exc.errors(include_url=False)
            )
            raise ValueError(f"invalid arguments for {self.name}: {problems}") from None
        kwargs = {self._unwrap: parsed} if self._unwrap else dict(parsed)
        if inspect.iscoroutinefunction(self.fn):
            call: Awaitable[Any] = self.fn(**kwargs)
        else:
            call = blocking.run("actions", self.fn, **kwargs)
        result = await asyncio.wait_for(call, timeout=self.timeout)
        return _as_text(result)


def _is_model(annotation: Any) -> bool:
    return inspect.isclass(annotation) and issubclass(annotation, BaseModel)


def _as_text(result: Any) -> str:
    if isinstance(result, str):
        return result
    if isinstance(result, BaseModel):
        return result.model_dump_json()
    return json.dumps(result, default=str)
