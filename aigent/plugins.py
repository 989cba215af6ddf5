"""Finding and loading plugins: built-ins, installed entry points, the character's, code objects.

Every agent gets its own :class:`Plugins` (one pluggy ``PluginManager``), so agents in one
process can run different plugin sets. Registries (models, embedders, memory stores, clients,
settlement engines) come from every installed plugin, and the character picks by name.
Behaviour (actions, context providers, evaluators, response hooks) comes only from *enabled*
plugins: built-ins, plugins passed in code, plugins the character names, and plugins whose
model, store or client the agent uses.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from aigent import hookspecs
from aigent.errors import PluginError
from aigent.paths import outside

GROUP = "aigent"
BEHAVIOUR_HOOKS = (
    "register_actions",
    "register_context_providers",
    "register_evaluators",
    "before_action",
    "before_publish",
    "after_publish",
)


@dataclass
class PluginInfo:
    name: str
    source: str  # "built-in", "installed", "character" or "code"
    distribution: str = ""
    version: str = ""
    hooks: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Registered:
    """One thing a plugin registered: ``value`` is the provider, factory, action, service... and
    ``name`` what the character picks it by (a store's or client's name, an action's name)."""

    plugin: str
    name: str
    value: Any


# Which plugin is asked first, when two serve the same model id or register the same name (the
# first wins): hookimpls marked ``tryfirst``, then by where the plugin came from (passed in code,
# named by the character, installed, built in), then by name; ``trylast`` ones after all others.
# Deterministic on every machine: entry points come in file-system order, so that order is never
# used.
SOURCE_RANK = {"code": 0, "character": 1, "installed": 2, "built-in": 3}


def _named(hook: str) -> Callable[..., Registered]:
    """``register(name, factory)``: stores, embedders, clients, settlement engines."""

    def check(plugin: str, *args: Any, **kwargs: Any) -> Registered:
        if kwargs or len(args) != 2 or not isinstance(args[0], str) or not callable(args[1]):
            raise _misuse(plugin, hook, "register(name: str, factory)", args, kwargs)
        return Registered(plugin, args[0], args[1])

    return check


def _one(hook: str, expected: str, *methods: str) -> Callable[..., Registered]:
    """``register(thing)``: a plain callable, or an object with ``methods``."""

    def check(plugin: str, *args: Any, **kwargs: Any) -> Registered:
        if kwargs or len(args) != 1:
            raise _misuse(plugin, hook, f"register({expected})", args, kwargs)
        [value] = args
        has_methods = all(callable(getattr(value, m, None)) for m in methods)
        objects_only = methods in (("start", "stop"), ("choose", "pay"), ("poll",))
        if not (has_methods or (callable(value) and not objects_only)):
            raise _misuse(plugin, hook, f"register({expected})", args, kwargs)
        name = getattr(value, "name", None) or getattr(value, "__name__", None)
        return Registered(plugin, str(name or type(value).__name__), value)

    return check


def _misuse(
    plugin: str, hook: str, expected: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> PluginError:
    got = ", ".join([*(type(a).__name__ for a in args), *(f"{k}=..." for k in kwargs)])
    return PluginError(
        plugin,
        f"{hook} called register({got}); expected {expected}",
        "aigent/hookspecs.py documents each hook's register",
    )


# Each ``register_*`` hook hands plugins a register for its own family, checked when called.
REGISTERS: dict[str, Callable[..., Registered]] = {
    "register_models": _one(
        "register_models", "a provider with supports() and get_model()", "supports", "get_model"
    ),
    "register_embedders": _named("register_embedders"),
    "register_memory_stores": _named("register_memory_stores"),
    "register_clients": _named("register_clients"),
    "register_settlement_engines": _named("register_settlement_engines"),
    "register_actions": _one("register_actions", "a function or an Action", "run", "spec"),
    "register_context_providers": _one(
        "register_context_providers", "a ContextProvider or an async function", "get"
    ),
    "register_evaluators": _one(
        "register_evaluators", "an Evaluator or an async function", "evaluate"
    ),
    "register_services": _one(
        "register_services", "a service with start() and stop()", "start", "stop"
    ),
    "register_x402_payers": _one(
        "register_x402_payers", "an X402Payer with choose() and pay()", "choose", "pay"
    ),
    "register_watchers": _one("register_watchers", "a Watcher with name and poll()", "poll"),
}


@functools.cache
def installed_entry_points() -> tuple[EntryPoint, ...]:
    """Entry points in the ``aigent`` group, read once per process (it scans site-packages)."""
    return tuple(entry_points(group=GROUP))


def _load_entry_point(ep: EntryPoint) -> object:
    try:
        return ep.load()
    except Exception as exc:
        dist = ep.dist.name if ep.dist else "?"
        raise PluginError(
            ep.name,
            f"failed to import ({type(exc).__name__}: {exc})",
            f"it comes from the installed package {dist!r}: reinstall or uninstall it",
        ) from exc


class Plugins:
    """The plugins of one agent."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.info: dict[str, PluginInfo] = {}
        self.enabled: set[str] = set()

    # --- loading -------------------------------------------------------------------------------

    def add(
        self, plugin: object, name: str | None = None, source: str = "code", enable: bool = True
    ) -> str:
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        if self.pm.has_plugin(name):
            return name
        try:
            self.pm.register(plugin, name=name)
            self.pm.check_pending()  # a misspelt hook name would otherwise be ignored silently
        except pluggy.PluginValidationError as exc:
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            raise PluginError(
                name,
                f"does not match the hook specifications: {exc}",
                "aigent/hookspecs.py lists every hook and its arguments",
            ) from exc
        self.info[name] = PluginInfo(name=name, source=source, hooks=self._hooks_of(plugin))
        if enable:
            self.enabled.add(name)
        return name

    def load_installed(self) -> None:
        """Every entry point in the ``aigent`` group; a broken one stops the agent."""
        for ep in installed_entry_points():
            if self.pm.has_plugin(ep.name):
                continue
            plugin = _load_entry_point(ep)
            dist = ep.dist.name if ep.dist else ""
            builtin = dist == "aigent"
            self.add(plugin, ep.name, "built-in" if builtin else "installed", enable=builtin)
            self.info[ep.name].distribution = dist
            self.info[ep.name].version = ep.dist.version if ep.dist else ""

    def load_named(
        self, spec: str, base_dir: Path | None = None, roots: Sequence[Path] | None = None
    ) -> str:
        """A plugin the character names: an installed name, a distribution, a module or a file
        (which must be inside one of ``roots``, the folders the character may reach, when
        given)."""
        for ep in installed_entry_points():
            dist = ep.dist.name if ep.dist else ""
            if spec in {ep.name, dist}:
                if not self.pm.has_plugin(ep.name):
                    self.add(_load_entry_point(ep), ep.name, "installed")
                self.enabled.add(ep.name)
                return ep.name
        if spec.endswith(".py") or "/" in spec or "\\" in spec:
            return self.add(self._import_file(spec, base_dir, roots), Path(spec).stem, "character")
        try:
            module = importlib.import_module(spec)
        except ImportError as exc:
            raise PluginError(
                spec,
                f"is not installed ({exc})",
                f"install it (pip install aigent-{spec} or pip install {spec}), give a path "
                "to a .py file, or remove it from the character's plugins; "
                "`aigent plugins` lists what is installed",
            ) from exc
        except Exception as exc:
            raise PluginError(spec, f"failed to import ({type(exc).__name__}: {exc})") from exc
        return self.add(module, spec, "character")

    @staticmethod
    def _import_file(
        spec: str, base_dir: Path | None, roots: Sequence[Path] | None = None
    ) -> ModuleType:
        path = Path(spec)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        problem = outside(path, roots) if roots is not None else None
        if problem is not None:
            raise PluginError(spec, problem)
        if not path.is_file():
            raise PluginError(spec, f"no such file: {path}")
        module_name = f"aigent_local_plugin_{path.stem}_{abs(hash(str(path.resolve())))}"
        if module_name in sys.modules:  # agents naming the same file share one module
            return sys.modules[module_name]
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise PluginError(spec, f"cannot import {path}")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[module_name] = module
        try:
            loader_spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(module_name, None)
            raise PluginError(
                spec, f"failed to import {path} ({type(exc).__name__}: {exc})"
            ) from exc
        return module

    def _hooks_of(self, plugin: object) -> list[str]:
        callers = self.pm.get_hookcallers(plugin) or []
        return sorted(caller.name for caller in callers)

    # --- calling -------------------------------------------------------------------------------

    def collect(self, hook: str, only_enabled: bool = False, **kwargs: Any) -> list[Registered]:
        """Call ``hook`` on each plugin with the ``register`` of its family; return what was
        registered, in precedence order (see ``SOURCE_RANK``).

        A plugin whose hook raises, or that calls ``register`` wrongly, is named in a
        :class:`PluginError`.
        """
        found: list[Registered] = []
        check = REGISTERS[hook]
        for impl in self._ordered(hook):
            if only_enabled and impl.plugin_name not in self.enabled:
                continue

            def register(*args: Any, _plugin: str = impl.plugin_name, **kw: Any) -> None:
                found.append(check(_plugin, *args, **kw))

            available = {"register": register, **kwargs}
            call_args = {name: available[name] for name in impl.argnames}
            if "ctx" in call_args and hasattr(call_args["ctx"], "for_plugin"):
                call_args["ctx"] = call_args["ctx"].for_plugin(impl.plugin_name)
            try:
                impl.function(**call_args)
            except PluginError:
                raise
            except Exception as exc:
                raise PluginError(
                    impl.plugin_name, f"{hook} failed ({type(exc).__name__}: {exc})"
                ) from exc
        return found

    def named(self, hook: str, only_enabled: bool = False, **kwargs: Any) -> dict[str, Registered]:
        """What ``hook`` registered, by name; where two plugins use one name, the first in
        precedence order wins."""
        by_name: dict[str, Registered] = {}
        for reg in self.collect(hook, only_enabled, **kwargs):
            by_name.setdefault(reg.name, reg)
        return by_name

    def _ordered(self, hook: str) -> list[Any]:
        def key(impl: Any) -> tuple[int, int, str]:
            tier = 0 if impl.tryfirst else 2 if impl.trylast else 1
            info = self.info.get(impl.plugin_name)
            rank = SOURCE_RANK.get(info.source, len(SOURCE_RANK)) if info else len(SOURCE_RANK)
            return tier, rank, impl.plugin_name

        return sorted(getattr(self.pm.hook, hook).get_hookimpls(), key=key)

    def behaviour(self, hook: str) -> Iterable[tuple[str, Callable[..., Any]]]:
        """(plugin name, call) for each enabled plugin implementing ``hook``; ``call`` takes
        the hook's arguments by keyword and passes on only those the plugin declared, as
        pluggy does (the names are read once, at registration, not per call)."""
        for impl in self._ordered(hook):
            if impl.plugin_name in self.enabled:
                yield impl.plugin_name, functools.partial(_call_declared, impl)


def _call_declared(impl: Any, **kwargs: Any) -> Any:
    return impl.function(**{name: kwargs[name] for name in impl.argnames})


def describe_installed() -> list[PluginInfo]:
    """Every installed plugin with its version and hooks, for ``aigent plugins``."""
    plugins = Plugins()
    plugins.load_installed()
    return sorted(plugins.info.values(), key=lambda p: (p.source != "built-in", p.name))
