"""A minimal aigent plugin: one action the model may call.

Install it (``pip install ./examples/plugin-weather``) and name it in a character's ``plugins``
(``"plugins": ["weather"]``); the model is then offered ``get_weather`` as a tool.
"""

from aigent import hookimpl

# A real plugin would call a weather API; this one answers from a table so it runs offline.
FORECASTS = {"lisbon": "sunny, 21°C", "oslo": "snow, -3°C", "lagos": "humid, 31°C"}


def get_weather(city: str) -> str:
    """The current weather in a city."""
    forecast = FORECASTS.get(city.lower())
    if forecast is None:
        return f"no forecast for {city}; known cities: {', '.join(sorted(FORECASTS))}"
    return f"{city}: {forecast}"


@hookimpl
def register_actions(register):
    register(get_weather)
