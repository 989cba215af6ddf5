"""Readers for the character files of ElizaOS (0.x and 1.x) and ZerePy.

Each foreign format is validated by its own pydantic model, so errors name the fields the user
wrote (``messageExamples[0][1].content.text``), then mapped onto aigent's :class:`Character`.
What has a meaning here is mapped; everything else is listed in the warnings, never dropped
silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aigent.documents import read_document
from aigent.errors import CharacterError
from aigent.paths import allowed_roots, check_inside

Format = Literal["aigent", "eliza-0.x", "eliza-1.x", "zerepy"]

# ElizaOS `modelProvider` -> (small, large) litellm model ids. Defaults follow ElizaOS's own.
ELIZA_PROVIDERS: dict[str, tuple[str, str]] = {
    "openai": ("openai/gpt-4o-mini", "openai/gpt-4o"),
    "anthropic": ("anthropic/claude-3-5-haiku-latest", "anthropic/claude-3-5-sonnet-latest"),
    "grok": ("xai/grok-2-latest", "xai/grok-2-latest"),
    "groq": ("groq/llama-3.1-8b-instant", "groq/llama-3.3-70b-versatile"),
    "ollama": ("ollama/llama3.2", "ollama/llama3.2"),
    "llama_local": ("local", "local"),
    "google": ("gemini/gemini-1.5-flash", "gemini/gemini-1.5-pro"),
    "mistral": ("mistral/mistral-small-latest", "mistral/mistral-large-latest"),
    "openrouter": ("openrouter/openai/gpt-4o-mini", "openrouter/openai/gpt-4o"),
    "deepseek": ("deepseek/deepseek-chat", "deepseek/deepseek-chat"),
    "together": (
        "together_ai/meta-llama/Llama-3.2-3B-Instruct-Turbo",
        "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo",
    ),
}
# litellm prefix for a provider, for `settings.model` overrides and ElizaOS 1.x model settings.
LITELLM_PREFIX = {
    "openai": "openai",
    "anthropic": "anthropic",
    "grok": "xai",
    "xai": "xai",
    "groq": "groq",
    "ollama": "ollama",
    "google": "gemini",
    "google-genai": "gemini",
    "mistral": "mistral",
    "openrouter": "openrouter",
    "deepseek": "deepseek",
    "together": "together_ai",
}

# ElizaOS plugin and client names -> what they become here.
BUILT_IN = "built in"
ELIZA_PLUGINS: dict[str, str] = {
    "sql": BUILT_IN,  # storage: aigent keeps its own per-agent data directory
    "bootstrap": BUILT_IN,  # the message loop, providers and evaluators of the runtime
    "knowledge": BUILT_IN,  # knowledge ingestion is the memory plugin's job
    "direct": BUILT_IN,  # the terminal chat and `Agent.chat`
    "twitter": "client:twitter",
    "client-twitter": "client:twitter",
    "discord": "client:discord",
    "client-discord": "client:discord",
    "telegram": "client:telegram",
    "client-telegram": "client:telegram",
    "local-ai": "model:local",
    "local-embedding": BUILT_IN,
    "openai": "model:openai",
    "anthropic": "model:anthropic",
    "ollama": "model:ollama",
    "openrouter": "model:openrouter",
    "google-genai": "model:google-genai",
    "groq": "model:groq",
    "xai": "model:xai",
    "grok": "model:xai",
    "mcp": "plugin:mcp",  # aigent-mcp reads the same settings.mcp.servers
}

# ElizaOS 0.x `clientConfig.<client>` flags -> settings.<client> keys of aigent's clients.
ELIZA_CLIENT_CONFIG: dict[str, dict[str, str]] = {
    "discord": {
        "shouldIgnoreBotMessages": "ignore_bots",
        "shouldIgnoreDirectMessages": "ignore_direct_messages",
        "shouldRespondOnlyToMentions": "only_mentions",
        "allowedChannelIds": "channels",
    },
    "telegram": {
        "shouldIgnoreBotMessages": "ignore_bots",
        "shouldIgnoreDirectMessages": "ignore_direct_messages",
        "shouldRespondOnlyToMentions": "only_mentions",
        "allowedGroupIds": "allowed_chats",
        "shouldOnlyJoinInAllowedGroups": "",  # implied here by allowed_chats being set
    },
}

ZEREPY_LLMS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "ollama": "ollama",
    "groq": "groq",
    "xai": "xai",
    "together": "together_ai",
}


class _Loose(BaseModel):
    # Unknown keys pass, as in the original loaders; they are reported as warnings instead.
    model_config = ConfigDict(extra="allow")


class ElizaContent(_Loose):
    text: str = ""
    action: str | None = None
    actions: list[str] = Field(default_factory=list)


class Eliza0Example(_Loose):
    user: str
    content: ElizaContent


class Eliza1Example(_Loose):
    name: str
    content: ElizaContent


class ElizaStyle(_Loose):
    all: list[str] = Field(default_factory=list)
    chat: list[str] = Field(default_factory=list)
    post: list[str] = Field(default_factory=list)


class ElizaKnowledgePath(_Loose):
    path: str
    shared: bool = False


class ElizaKnowledgeDirectory(_Loose):
    directory: str
    shared: bool = False


ElizaKnowledge = str | ElizaKnowledgePath | ElizaKnowledgeDirectory


class Eliza0Settings(_Loose):
    secrets: dict[str, str | int | float | bool] = Field(default_factory=dict)
    model: str | None = None
    modelConfig: dict[str, Any] | None = None
    embeddingModel: str | None = None
    ragKnowledge: bool | None = None


class _ElizaCommon(_Loose):
    name: str = Field(min_length=1)
    username: str | None = None
    system: str | None = None
    bio: str | list[str] = Field(default_factory=list)
    postExamples: list[str] = Field(default_factory=list)
    topics: list[str] = Field(default_factory=list)
    adjectives: list[str] = Field(default_factory=list)
    style: ElizaStyle = Field(default_factory=ElizaStyle)
    knowledge: list[ElizaKnowledge] = Field(default_factory=list)
    templates: dict[str, str] = Field(default_factory=dict)

    @field_validator("knowledge", mode="before")
    @classmethod
    def _one_knowledge(cls, value: Any) -> Any:
        return [value] if isinstance(value, str | dict) else value


class Eliza0(_ElizaCommon):
    modelProvider: str | None = None
    modelEndpointOverride: str | None = None
    lore: list[str] = Field(default_factory=list)
    messageExamples: list[list[Eliza0Example]] = Field(default_factory=list)
    clients: list[str] = Field(default_factory=list)
    plugins: list[str | dict[str, Any]] = Field(default_factory=list)
    settings: Eliza0Settings = Field(default_factory=Eliza0Settings)
    extends: list[str] = Field(default_factory=list)
    clientConfig: dict[str, Any] = Field(default_factory=dict)


class Eliza1(_ElizaCommon):
    messageExamples: list[list[Eliza1Example]] = Field(default_factory=list)
    plugins: list[str] = Field(default_factory=list)
    settings: dict[str, Any] = Field(default_factory=dict)
    secrets: dict[str, str | int | float | bool] = Field(default_factory=dict)


class ZerePyConnection(_Loose):
    name: str


class ZerePyTask(_Loose):
    name: str
    weight: float = Field(ge=0)


class ZerePy(_Loose):
    name: str = Field(min_length=1)
    bio: list[str]
    traits: list[str]
    examples: list[str]
    loop_delay: float = Field(gt=0)
    config: list[ZerePyConnection]
    tasks: list[ZerePyTask]
    example_accounts: list[str] = Field(default_factory=list)
    use_time_based_weights: bool = False
    time_based_multipliers: dict[str, float] = Field(default_factory=dict)


AIGENT_ONLY = {"message_examples", "post_examples", "models", "price", "loop", "memory", "data_dir"}
ELIZA_CAMEL = {"messageExamples", "postExamples", "modelEndpointOverride", "twitterProfile"}


def detect_format(raw: dict[str, Any]) -> Format:
    """Tell the formats apart by the fields only one of them has."""
    if "traits" in raw or ("loop_delay" in raw and isinstance(raw.get("config"), list)):
        return "zerepy"
    if AIGENT_ONLY & raw.keys():
        return "aigent"
    examples = raw.get("messageExamples")
    first = examples[0][0] if examples and _nested(examples) else None
    camel = bool(ELIZA_CAMEL & raw.keys())
    if (
        any(k in raw for k in ("modelProvider", "extends", "clientConfig"))
        or (isinstance(first, dict) and "user" in first)
        or (camel and ("lore" in raw or "clients" in raw))
    ):
        return "eliza-0.x"
    plugins = raw.get("plugins")
    npm = isinstance(plugins, list) and any(
        isinstance(p, str) and p.startswith("@") for p in plugins
    )
    if camel or npm:
        return "eliza-1.x"
    return "aigent"


def to_aigent(raw: dict[str, Any], fmt: Format, file: Path) -> tuple[dict[str, Any], list[str]]:
    """Map a parsed file onto aigent's field names; returns (data, warnings)."""
    if fmt == "aigent":
        return raw, []
    if fmt == "zerepy":
        return _from_zerepy(ZerePy.model_validate(raw))
    if fmt == "eliza-0.x":
        raw = _resolve_extends(raw, file, seen={file.resolve()})
        return _from_eliza0(Eliza0.model_validate(raw))
    return _from_eliza1(Eliza1.model_validate(raw))


# --- ElizaOS -------------------------------------------------------------------------------------

_ELIZA0_KNOWN = set(Eliza0.model_fields) | {"id"}
_ELIZA0_UNSUPPORTED = {
    "imageModelProvider": "image generation is not supported",
    "imageVisionModelProvider": "image description is not supported",
    "twitterProfile": "the twitter plugin reads the profile from the account",
    "instagramProfile": "there is no Instagram plugin",
    "nft": "NFT generation is not supported",
    "email": "aigent does not use it",
}


def _common(c: _ElizaCommon, warnings: list[str]) -> dict[str, Any]:
    if c.templates:
        warnings.append(
            f"templates ({', '.join(sorted(c.templates))}): ElizaOS prompt templates are not "
            "used; aigent builds its prompt from the character's fields"
        )
    knowledge: list[Any] = []
    for entry in c.knowledge:
        knowledge.append(entry if isinstance(entry, str) else entry.model_dump(exclude_unset=True))
    return {
        "name": c.name,
        "username": c.username,
        "system": c.system,
        "bio": c.bio,
        "post_examples": c.postExamples,
        "topics": c.topics,
        "adjectives": c.adjectives,
        "style": c.style.model_dump(include={"all", "chat", "post"}),
        "knowledge": knowledge,
    }


def _examples(rows: list[list[Any]], speaker: str) -> list[list[dict[str, Any]]]:
    out = []
    for convo in rows:
        turns = []
        for turn in convo:
            actions = list(turn.content.actions)
            if turn.content.action:
                actions.append(turn.content.action)
            turns.append(
                {"user": getattr(turn, speaker), "text": turn.content.text, "actions": actions}
            )
        out.append(turns)
    return out


def _from_eliza0(c: Eliza0) -> tuple[dict[str, Any], list[str]]:
    warnings: list[str] = []
    data = _common(c, warnings)
    data["lore"] = c.lore
    data["message_examples"] = _examples(c.messageExamples, "user")
    data["secrets"] = dict(c.settings.secrets)

    models: dict[str, Any] = {}
    provider = (c.modelProvider or "").lower()
    if provider:
        if provider in ELIZA_PROVIDERS:
            small, large = ELIZA_PROVIDERS[provider]
            if c.settings.model and provider in LITELLM_PREFIX:
                large = f"{LITELLM_PREFIX[provider]}/{c.settings.model}"
            models = {"small": _model(small, c), "large": _model(large, c)}
        else:
            warnings.append(
                f"modelProvider: {c.modelProvider!r} has no aigent mapping; the default model is "
                "used (set models.large to a litellm id such as 'openai/gpt-4o-mini')"
            )
    if c.settings.embeddingModel:
        models["embedding"] = c.settings.embeddingModel
    data["models"] = models

    plugins, clients = _eliza_plugins(c.clients, "clients", warnings)
    more_plugins, more_clients = _eliza_plugins(c.plugins, "plugins", warnings)
    data["plugins"], data["clients"] = plugins + more_plugins, _unique(clients + more_clients)
    data["settings"] = _client_config(c.clientConfig, warnings)

    for key, what in _ELIZA0_UNSUPPORTED.items():
        if key in c.model_fields_set or key in (c.model_extra or {}):
            warnings.append(f"{key}: ignored ({what})")
    for key in c.model_extra or {}:
        if key not in _ELIZA0_KNOWN and key not in _ELIZA0_UNSUPPORTED:
            warnings.append(f"{key}: not an ElizaOS 0.x field; ignored")
    for key in c.settings.model_extra or {}:
        warnings.append(f"settings.{key}: ignored, aigent has no equivalent")
    if c.settings.ragKnowledge is not None:
        warnings.append(
            "settings.ragKnowledge: not needed; aigent always retrieves knowledge in chunks"
        )
    return data, warnings


def _client_config(config: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for client, flags in config.items():
        names = ELIZA_CLIENT_CONFIG.get(client)
        if names is None or not isinstance(flags, dict):
            warnings.append(
                f"clientConfig.{client}: ignored (client flags go under settings.<plugin> in "
                "aigent)"
            )
            continue
        for key, value in flags.items():
            if key not in names:
                warnings.append(f"clientConfig.{client}.{key}: ignored, aigent has no equivalent")
            elif names[key]:
                settings.setdefault(client, {})[names[key]] = value
    return settings


def _model(model_id: str, c: Eliza0) -> dict[str, Any]:
    config: dict[str, Any] = {"model": model_id}
    if c.modelEndpointOverride:
        config["api_base"] = c.modelEndpointOverride
    mc = c.settings.modelConfig or {}
    if "temperature" in mc:
        config["temperature"] = mc["temperature"]
    for key in ("maxOutputTokens", "max_response_length"):
        if key in mc:
            config["max_tokens"] = mc[key]
    return config


def _from_eliza1(c: Eliza1) -> tuple[dict[str, Any], list[str]]:
    warnings: list[str] = []
    data = _common(c, warnings)
    data["message_examples"] = _examples(c.messageExamples, "name")
    plugins, clients = _eliza_plugins(c.plugins, "plugins", warnings)
    data["plugins"], data["clients"] = plugins, clients
    # ElizaOS 1.x reads its settings like environment variables (runtime.getSetting), after
    # the character's secrets: they become the lowest-precedence secrets here.
    secrets = {k: v for k, v in c.settings.items() if isinstance(v, str | int | float | bool)}
    secrets.update(c.secrets)
    data["secrets"] = secrets
    for key, value in c.settings.items():
        if key in [*data["plugins"], *data["clients"]] and isinstance(value, dict):
            # A plugin's own block (settings.mcp for @elizaos/plugin-mcp) is its settings here too.
            data.setdefault("settings", {})[key] = value
        elif not isinstance(value, str | int | float | bool):
            warnings.append(f"settings.{key}: ignored (only plain values are read)")
    data["models"] = _eliza1_models(c, warnings)
    for key in c.model_extra or {}:
        warnings.append(f"{key}: not an ElizaOS 1.x field; ignored")
    return data, warnings


def _eliza1_models(c: Eliza1, warnings: list[str]) -> dict[str, Any]:
    """ElizaOS 1.x picks models by the model plugin loaded and `<PROVIDER>_*_MODEL` settings."""
    for plugin in c.plugins:
        short = _short_plugin_name(plugin)
        if short == "local-ai":
            return {"small": "local", "large": "local"}
        prefix = LITELLM_PREFIX.get(short)
        if not prefix:
            continue
        env = short.upper().replace("-", "_").replace("GOOGLE_GENAI", "GOOGLE")
        small_default, large_default = ELIZA_PROVIDERS.get(short, (None, None))
        small = c.settings.get(f"{env}_SMALL_MODEL")
        large = c.settings.get(f"{env}_LARGE_MODEL")
        models: dict[str, Any] = {}
        base = c.settings.get(f"{env}_BASE_URL") or c.settings.get(f"{env}_API_ENDPOINT")
        for role, name, default in (
            ("small", small, small_default),
            ("large", large, large_default),
        ):
            model_id = f"{prefix}/{name}" if name else default
            if model_id:
                models[role] = {"model": model_id, **({"api_base": base} if base else {})}
        if models:
            return models
        warnings.append(
            f"plugins: {plugin!r} needs a model name; set models.large (e.g. '{prefix}/...')"
        )
    return {}


def _short_plugin_name(name: str) -> str:
    short = name.rsplit("/", 1)[-1]
    for prefix in ("plugin-", "client-"):
        short = short.removeprefix(prefix)
    return short.lower()


def _eliza_plugins(
    names: list[Any], field: str, warnings: list[str]
) -> tuple[list[str], list[str]]:
    """ElizaOS plugin/client names -> (aigent plugins, aigent clients)."""
    plugins: list[str] = []
    clients: list[str] = []
    for i, name in enumerate(names):
        if not isinstance(name, str):
            warnings.append(f"{field}[{i}]: inline plugin objects cannot be loaded; ignored")
            continue
        target = ELIZA_PLUGINS.get(_short_plugin_name(name))
        if target is None:
            warnings.append(
                f"{field}[{i}]: {name!r} has no aigent plugin yet; ignored "
                "(`aigent plugins` lists what is installed)"
            )
        elif target.startswith("client:"):
            clients.append(target.removeprefix("client:"))
        elif target.startswith("plugin:"):
            plugins.append(target.removeprefix("plugin:"))
        # Built-ins and model plugins need nothing here: models are chosen by id.
    return plugins, clients


def _resolve_extends(raw: dict[str, Any], file: Path, seen: set[Path]) -> dict[str, Any]:
    """ElizaOS 0.x `extends`: parents deep-merged first, arrays concatenated, child wins."""
    parents = raw.get("extends") or []
    if not isinstance(parents, list):
        return raw
    merged: dict[str, Any] = {}
    for i, parent in enumerate(parents):
        if not isinstance(parent, str):
            raise CharacterError(str(file), [(f"extends[{i}]", "expected a file path")])
        path = (file.parent / parent).resolve()
        if not path.exists() and Path(parent).exists():
            path = Path(parent).resolve()
        check_inside(path, allowed_roots(file.parent), file=str(file), field=f"extends[{i}]")
        if path in seen:
            raise CharacterError(str(file), [(f"extends[{i}]", f"{parent} extends itself")])
        if not path.is_file():
            raise CharacterError(str(file), [(f"extends[{i}]", f"no such file: {parent}")])
        parent_raw = read_document(path)
        if not isinstance(parent_raw, dict):
            raise CharacterError(str(path), [("", "expected a JSON object")])
        merged = _deep_merge(merged, _resolve_extends(parent_raw, path, seen | {path}))
    child = {k: v for k, v in raw.items() if k != "extends"}
    return _deep_merge(merged, child)


def _deep_merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        elif isinstance(value, list) and isinstance(out.get(key), list):
            out[key] = out[key] + value
        else:
            out[key] = value
    return out


# --- ZerePy --------------------------------------------------------------------------------------

_ZEREPY_UNSUPPORTED_CONNECTIONS = {
    "solana", "ethereum", "sonic", "monad", "goat", "allora", "farcaster",
    "echochambers", "perplexity", "eternalai", "hyperbolic", "galadriel",
}  # fmt: skip


# ZerePy loop tasks -> the connection whose client runs them here. The twitter client's loop
# runs its tasks; the Discord client answers as messages arrive, so ZerePy's reading and
# replying tasks need no turn of the loop.
ZEREPY_LOOP_TASKS = dict.fromkeys(
    ("post-tweet", "post", "reply-to-tweet", "respond-to-mentions", "reply", "like-tweet", "like",
     "repost", "retweet", "quote"),
    "twitter",
)  # fmt: skip
ZEREPY_LIVE_TASKS = {
    "reply-to-discord-message": "discord",
    "read-mentioned-messages": "discord",
    "read-messages": "discord",
}
ZEREPY_NOT_RUN = {
    "post-discord-message": "aigent's Discord client answers mentions, direct messages and "
    "threads as they come but does not post to a channel on a schedule",
}


def _zerepy_tasks(tasks: list[ZerePyTask], clients: list[str]) -> tuple[list[Any], list[str]]:
    """The tasks the twitter client's loop runs, and a warning for each task nothing here runs
    (never dropped silently)."""
    kept: list[Any] = []
    warnings: list[str] = []
    for i, task in enumerate(tasks):
        where = f"tasks[{i}]: {task.name!r}"
        needs = ZEREPY_LOOP_TASKS.get(task.name) or ZEREPY_LIVE_TASKS.get(task.name)
        if task.name in ZEREPY_NOT_RUN:
            warnings.append(f"{where} is not run: {ZEREPY_NOT_RUN[task.name]}")
        elif needs is None:
            warnings.append(f"{where} is not a task aigent runs; not run")
        elif needs not in clients:
            warnings.append(f"{where} needs the {needs} connection, which this file lacks; not run")
        elif task.name in ZEREPY_LOOP_TASKS:
            kept.append(task.model_dump(include={"name", "weight"}))
        # a live task: its client does it as messages arrive
    return kept, warnings


def _from_zerepy(z: ZerePy) -> tuple[dict[str, Any], list[str]]:
    warnings: list[str] = []
    chain: list[dict[str, Any]] = []
    clients: list[str] = []
    settings: dict[str, Any] = {}
    for i, conn in enumerate(z.config):
        options = dict(conn.model_extra or {})
        if conn.name in ZEREPY_LLMS:
            # ZerePy uses the first LLM connection only; here the others become its fallbacks.
            model = options.pop("model", None)
            if not model:
                warnings.append(f"config[{i}].model: missing; connection {conn.name!r} skipped")
                continue
            entry: dict[str, Any] = {"model": f"{ZEREPY_LLMS[conn.name]}/{model}"}
            if "base_url" in options:
                entry["api_base"] = options.pop("base_url")
            if "temperature" in options:
                entry["temperature"] = options.pop("temperature")
            chain.append(entry)
            for key in options:
                warnings.append(f"config[{i}].{key}: ignored for {conn.name}")
        elif conn.name == "twitter":
            clients.append("twitter")
            settings["twitter"] = options
        elif conn.name == "discord":
            clients.append("discord")
            if "message_read_count" in options:  # ZerePy's read size is the context here
                options["context_messages"] = options.pop("message_read_count")
            settings["discord"] = options
        elif conn.name in _ZEREPY_UNSUPPORTED_CONNECTIONS:
            warnings.append(f"config[{i}]: connection {conn.name!r} has no aigent plugin; ignored")
        else:
            warnings.append(f"config[{i}]: unknown connection {conn.name!r}; ignored")
    if z.example_accounts:
        settings.setdefault("twitter", {})["example_accounts"] = z.example_accounts
    for key in z.model_extra or {}:
        warnings.append(f"{key}: not a ZerePy field; ignored")
    tasks, about_tasks = _zerepy_tasks(z.tasks, clients)
    warnings += about_tasks
    data: dict[str, Any] = {
        "name": z.name,
        "bio": z.bio,
        "adjectives": z.traits,
        "post_examples": z.examples,
        "models": {"large": chain} if chain else {},
        "clients": clients,
        "settings": settings,
        "loop": {
            "delay": z.loop_delay,
            "tasks": tasks,
            "time_multipliers": z.time_based_multipliers,
            "use_time_multipliers": z.use_time_based_weights,
        },
    }
    return data, warnings


def _nested(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and isinstance(value[0], list) and bool(value[0])


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
