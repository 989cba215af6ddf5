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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from aigent import hookspecs
from aigent.errors import PluginError

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


@dataclass
class Registered:
    plugin: str
    args: tuple[Any, ...]


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

    def load_named(self, spec: str, base_dir: Path | None = None) -> str:
        """A plugin the character names: an installed name, a distribution, a module or a file."""
        for ep in installed_entry_points():
            dist = ep.dist.name if ep.dist else ""
            if spec in {ep.name, dist}:
                if not self.pm.has_plugin(ep.name):
                    self.add(_load_entry_point(ep), ep.name, "installed")
                self.enabled.add(ep.name)
                return ep.name
        if spec.endswith(".py") or "/" in spec or "\\" in spec:
            return self.add(self._import_file(spec, base_dir), Path(spec).stem, "character")
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
    def _import_file(spec: str, base_dir: Path | None) -> ModuleType:
        path = Path(spec)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
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
        """Call ``hook`` on each plugin with a ``register`` callback; return what was registered.

        A plugin whose hook raises is named in a :class:`PluginError`.
        """
        found: list[Registered] = []
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            if only_enabled and impl.plugin_name not in self.enabled:
                continue

            def register(*args: Any, _plugin: str = impl.plugin_name) -> None:
                found.append(Registered(_plugin, args))

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

    def behaviour(self, hook: str) -> Iterable[tuple[str, Callable[..., Any]]]:
        """(plugin name, call) for each enabled plugin implementing ``hook``; ``call`` takes
        the hook's arguments by keyword and passes on only those the plugin declared, as
        pluggy does (the names are read once, at registration, not per call)."""
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            if impl.plugin_name in self.enabled:
                yield impl.plugin_name, functools.partial(_call_declared, impl)


def _call_declared(impl: Any, **kwargs: Any) -> Any:
    return impl.function(**{name: kwargs[name] for name in impl.argnames})


def describe_installed() -> list[PluginInfo]:
    """Every installed plugin with its version and hooks, for ``aigent plugins``."""
    plugins = Plugins()
    plugins.load_installed()
    return sorted(plugins.info.values(), key=lambda p: (p.source != "built-in", p.name))
