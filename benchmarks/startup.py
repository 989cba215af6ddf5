"""Start-up cost of `import aigent` and `aigent --help`, as ratios to `python -c pass`.

Run: uv run --all-packages python benchmarks/startup.py [runs]
Ratios, not seconds, so the figures mean the same on a slow machine.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time


def median_seconds(args: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    py = sys.executable
    base = median_seconds([py, "-c", "pass"], runs)
    cases = {
        "import aigent": [py, "-c", "import aigent"],
        "import aigent; Agent": [py, "-c", "from aigent import Agent"],
        "aigent --help": [py, "-m", "aigent.cli", "--help"],
    }
    print(f"python -c pass: {base * 1000:.1f} ms (median of {runs})")
    for name, args in cases.items():
        t = median_seconds(args, runs)
        print(f"{name:24s} {t * 1000:7.1f} ms  {t / base:5.2f}x python -c pass")


if __name__ == "__main__":
    main()
