"""One registry type for every name-to-implementation table of the project.

Quantizers, datasets, models, training rules, engines, losses, activations and backends are
all looked up by name the same way: case-insensitive, ``-`` and ``_`` alike, aliases allowed,
and one message for a name that is not there::

    MODELS = Registry("model")

    @MODELS.register("hadamrnn", aliases=("binadamssm",))
    def _hadamrnn(cfg): ...

    MODELS.get("BinadamSSM")   # the builder
    MODELS.get("lstmm")        # ConfigError: unknown model 'lstmm'; choose one of
                               # hadamrnn, lstm, ornn, qornn (did you mean 'lstm'?)

Like timm's ``create_model`` and larq's quantizer aliases: adding an implementation is adding
one entry, and a test parametrised over ``REGISTRY.names()`` covers it.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar, overload

from .errors import BnnError, ConfigError

__all__ = ["Registry", "normalize_name"]

T = TypeVar("T")


def normalize_name(name: str) -> str:
    """The lookup key of ``name``: stripped, lower case, ``-`` written as ``_``."""
    return str(name).strip().lower().replace("-", "_")


class Registry(Generic[T]):
    """Names (and aliases) mapped to implementations of one kind.

    Args:
        kind: what the entries are, for messages ("model", "training method", ...).
        normalize: the key of a name; default :func:`normalize_name`.
        flag: the flag or config key that names an entry (``"--method"``), quoted in the
            error for an unknown name.
    """

    def __init__(
        self,
        kind: str,
        *,
        normalize: Callable[[str], str] = normalize_name,
        flag: str | None = None,
    ) -> None:
        self.kind = kind
        self.flag = flag
        self._normalize = normalize
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    # -- registering -------------------------------------------------------------------------

    @overload
    def register(
        self, name: str, obj: T, *, aliases: Iterable[str] = (), replace: bool = False
    ) -> T: ...

    @overload
    def register(
        self, name: str, obj: None = None, *, aliases: Iterable[str] = (), replace: bool = False
    ) -> Callable[[T], T]: ...

    def register(
        self,
        name: str,
        obj: T | None = None,
        *,
        aliases: Iterable[str] = (),
        replace: bool = False,
    ) -> Any:
        """Register ``obj`` under ``name`` (and ``aliases``); without ``obj``, a decorator.

        Args:
            name: the registered name (normalised).
            obj: the entry; omitted, ``register`` returns a decorator.
            aliases: more names for the entry.
            replace: allow replacing an entry already registered under ``name``.

        Raises:
            BnnError: the name (without ``replace``) or an alias is already taken by another
                entry.
        """
        aliases = tuple(aliases)

        def add(value: T) -> T:
            key = self._normalize(name)
            if key in self._entries and self._entries[key] is not value and not replace:
                raise BnnError(f"{self.kind} {name!r} is already registered")
            for alias in aliases:
                taken = self._aliases.get(self._normalize(alias), key)
                if taken != key or self._normalize(alias) in self._entries:
                    raise BnnError(f"{self.kind} alias {alias!r} is already taken")
            self._entries[key] = value
            for alias in aliases:
                self._aliases[self._normalize(alias)] = key
            return value

        return add if obj is None else add(obj)

    # -- looking up --------------------------------------------------------------------------

    def canonical(self, name: str) -> str:
        """The registered name of ``name`` or of its alias.

        Raises:
            ConfigError: no such name: the message names the kind, the flag and the choices.
        """
        key = self._normalize(name)
        key = self._aliases.get(key, key)
        if key not in self._entries:
            raise ConfigError(self.unknown_message(name))
        return key

    def get(self, name: str) -> T:
        """The entry registered under ``name`` (or one of its aliases); see :meth:`canonical`."""
        return self._entries[self.canonical(name)]

    def unknown_message(self, name: Any) -> str:
        """``unknown <kind> 'X' (<flag>); choose one of a, b, c (did you mean 'a'?)``."""
        where = f" ({self.flag})" if self.flag else ""
        message = f"unknown {self.kind} {name!r}{where}; choose one of {', '.join(self.names())}"
        close = difflib.get_close_matches(
            self._normalize(str(name)), [*self._entries, *self._aliases], n=1, cutoff=0.6
        )
        return message + (f" (did you mean {close[0]!r}?)" if close else "")

    def names(self) -> list[str]:
        """The registered names, sorted (aliases not included)."""
        return sorted(self._entries)

    def aliases(self) -> dict[str, str]:
        """Alias -> registered name."""
        return dict(self._aliases)

    def items(self) -> list[tuple[str, T]]:
        """``(name, entry)`` pairs, sorted by name."""
        return [(name, self._entries[name]) for name in self.names()]

    def copy(self) -> Registry[T]:
        """An independent registry with the same entries (tests register into copies)."""
        other: Registry[T] = Registry(self.kind, normalize=self._normalize, flag=self.flag)
        other._entries, other._aliases = dict(self._entries), dict(self._aliases)
        return other

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = self._normalize(name)
        return self._aliases.get(key, key) in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
