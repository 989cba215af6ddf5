"""Models through litellm: one plugin for every hosted provider and any OpenAI-compatible server.

litellm takes seconds to import, so it is never imported here: an agent whose models need it
starts the import in a background thread when it is assembled.
"""

from aigent_litellm.plugin import register_embedders, register_models

__all__ = ["register_embedders", "register_models"]
