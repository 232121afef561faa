"""``Closing``: what every object holding a kernel resource (an fd, a pidfd) does at the end.

Such an object closes on ``with`` exit, on :meth:`close`, and when it is collected, so a
forgotten one never keeps a process's pagemap or pidfd open.
"""

from __future__ import annotations

from typing import TypeVar

_C = TypeVar("_C", bound="Closing")


class Closing:
    """Mixin: ``__enter__`` returns the object, ``__exit__`` and ``__del__`` call ``close()``.

    ``close`` must be idempotent: it runs again at collection after an explicit close.
    """

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # (a half-built object, or interpreter shutdown)
            pass
