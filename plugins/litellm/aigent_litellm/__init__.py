"""Models through litellm: one plugin for every hosted provider and any OpenAI-compatible server.

litellm takes seconds to import, so it is imported when a model is first called, never here.
"""

from aigent_litellm.plugin import register_models

__all__ = ["register_models"]
