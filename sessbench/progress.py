"""Progress bars: one protocol for every long step (reading, preprocessing, training, evaluation).

A progress factory is `progress(total=..., desc=...)` returning a context-managed bar with
`update(n)` and `set_postfix(...)`; tqdm satisfies it (the CLI passes one). Library code takes an
optional factory and opens its bar with `open_bar`, which gives a do-nothing bar when there is
none, so callers never test for a missing bar.
"""

from __future__ import annotations

from typing import Any, Callable, ContextManager

ProgressFactory = Callable[..., ContextManager[Any]]


class _NullBar:
    def __enter__(self) -> "_NullBar":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def null_progress(total: int | None = None, desc: str = "") -> _NullBar:
    """A progress factory that shows nothing."""
    return _NullBar()


def open_bar(progress: ProgressFactory | None, total: int | None, desc: str) -> ContextManager[Any]:
    """The bar of `progress`, or a do-nothing bar when `progress` is None."""
    return (progress or null_progress)(total=total, desc=desc)
