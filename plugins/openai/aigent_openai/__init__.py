"""Chat models over the OpenAI wire format, spoken directly: OpenAI, xAI, Groq, Together,
DeepSeek, OpenRouter, Mistral, Ollama's ``/v1``, vLLM and any OpenAI-compatible ``api_base``.

One pooled keep-alive HTTP client per server and event loop; no SDK. ``close_pools()`` closes
the running loop's clients (an app about to close its loop may call it).
"""

from __future__ import annotations

from aigent_openai.plugin import register_models

__all__ = ["close_pools", "register_models"]


async def close_pools() -> None:
    """Close the running event loop's pooled clients (httpx is imported only when used)."""
    from aigent_openai.pool import close_pools as close

    await close()
