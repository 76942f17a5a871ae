"""Reading the explorer page in the browser tests (the browser itself: `tracker.dev.explorer`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def rows(driver: Any, selector: str) -> list[dict[str, str]]:
    """The rows a selector finds, each as {ok: its data-ok, text: what it shows}."""
    script = "return Array.from(document.querySelectorAll(arguments[0])).map(r => ({ok: r.dataset.ok || '', text: r.innerText}))"
    return list(driver.execute_script(script, selector))


def checks(driver: Any) -> dict[str, dict[str, str]]:
    """The five checks as the page shows them: {check: {ok, reason}}."""
    script = (
        "return Object.fromEntries(Array.from(document.querySelectorAll('#checks li'))"
        ".map(li => [li.dataset.check, {ok: li.dataset.ok, reason: li.querySelector('.reason').innerText}]))"
    )
    return dict(driver.execute_script(script))
