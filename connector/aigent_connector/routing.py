"""Static routes with longest-prefix match on ILP address segments."""

from __future__ import annotations

CACHE_SIZE = 10_000  # destinations remembered; STREAM sends many packets to each


class RoutingTable:
    def __init__(self) -> None:
        self._routes: dict[str, str] = {}
        self._cache: dict[str, str | None] = {}  # destination -> lookup(), on every packet's path

    def add(self, prefix: str, account: str) -> None:
        self._routes[prefix] = account
        self._cache.clear()

    def remove(self, prefix: str) -> None:
        self._routes.pop(prefix, None)
        self._cache.clear()

    def items(self) -> list[tuple[str, str]]:
        return sorted(self._routes.items())

    def lookup(self, destination: str) -> str | None:
        """The account for the longest prefix that ends at a segment boundary of
        ``destination`` ("g.a" routes "g.a" and "g.a.b", not "g.ab"); "" is the default."""
        try:
            return self._cache[destination]
        except KeyError:
            pass
        if len(self._cache) >= CACHE_SIZE:
            self._cache.clear()
        found = self._cache[destination] = self._longest(destination)
        return found

    def _longest(self, destination: str) -> str | None:
        best: tuple[int, str] | None = None
        for prefix, account in self._routes.items():
            if (
                prefix == ""
                or destination == prefix
                or destination.startswith(prefix if prefix.endswith(".") else prefix + ".")
            ) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), account)
        return best[1] if best else None
