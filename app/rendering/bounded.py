"""Templates written by staff run bounded in time and memory.

``BoundedEnvironment`` is Jinja2's ImmutableSandboxedEnvironment (no ``data.update(…)`` changing
what another rule's template sees) with limits on what one expression may build:

- ``*`` of a string or list by a number: at most MAX_BUILT_CHARS characters or items;
- ``**``: an exponent of at most 64 and a result of at most 4,096 bits (``9**(9**9)`` is refused
  before Python starts on it: a single C call cannot be interrupted);
- ``%`` and ``|format``: no field width or precision above MAX_FORMAT_WIDTH;
- ``range``: at most MAX_RANGE items; str's ``ljust``, ``center``, ``zfill``, ``format``, … and the
  filters ``center`` and ``indent`` are not offered (each is a width waiting to be 10**9);
- loops nested deeper than MAX_LOOP_DEPTH are refused when the template is compiled.

A render as a whole is bounded too (``render_bounded``): its output to MAX_OUTPUT_CHARS, and its
time to a budget, enforced in the main thread by an interval timer whose signal interrupts the
template's Python code between any two bytecodes — loops that print nothing included. (Off the
main thread, where Python delivers no signals, the limits on each expression still hold.)
"""

from __future__ import annotations

import _signal
import atexit
import re
import signal
import threading
import time
from collections.abc import MutableMapping
from functools import lru_cache
from typing import Any

from jinja2 import Template, nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_BUILT_CHARS = 20_000
MAX_RANGE = 1_000
MAX_FORMAT_WIDTH = 200
MAX_POW_EXPONENT = 64
MAX_POW_BITS = 4096
MAX_LOOP_DEPTH = 2
MAX_OUTPUT_CHARS = 100_000
RENDER_BUDGET_SECONDS = 0.25

UNSAFE_STR_METHODS = frozenset(
    {"format", "format_map", "ljust", "rjust", "center", "zfill", "expandtabs"}
)
_DICT_ATTRIBUTES = frozenset(dir(dict))
_WIDTH = re.compile(r"%[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


class RenderBudgetExceeded(SecurityError):
    """A render took longer than its budget or produced more than its output limit."""


def _too_wide(fmt: str) -> bool:
    for match in _WIDTH.finditer(fmt):
        for group in match.groups():
            if group == "*" or (group and int(group) > MAX_FORMAT_WIDTH):
                return True
    return False


def _size(value: Any) -> int | None:
    return len(value) if isinstance(value, str | list | tuple | bytes) else None


def bounded_range(*args: int) -> range:
    items = range(*args)
    if len(items) > MAX_RANGE:
        raise SecurityError(f"range of {len(items)} items; at most {MAX_RANGE}")
    return items


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals["range"] = bounded_range
        for name in ("center", "indent", "wordwrap", "filesizeformat"):
            self.filters.pop(name, None)
        self.filters["format"] = self._format_filter

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        """A template's globals as one plain dict, not Jinja's ChainMap over the environment's:
        every render builds its context from them, and iterating a ChainMap cost a third of a
        short render (10 µs of 30). The environment's globals are set once, in ``__init__``,
        before any template is loaded, so a snapshot misses nothing."""
        return {**self.globals, **(d or {})}

    def getattr(self, obj: Any, attribute: str) -> Any:
        """``data.level`` on a plain dict straight to its item: Jinja tries the attribute first
        and takes the item after the AttributeError, an exception a field (six in a warning's
        SMS). The same answer: a dict's own attributes (``items``, ``keys`` …) still go the
        sandbox's way, and so does a missing key (undefined, an error under StrictUndefined)."""
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                pass
        return super().getattr(obj, attribute)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                size = _size(seq)
                if size is not None and isinstance(times, int) and size * times > MAX_BUILT_CHARS:
                    raise SecurityError(
                        f"* would build {size * times} items; at most {MAX_BUILT_CHARS}"
                    )
        elif operator == "**":
            if isinstance(left, int | float) and isinstance(right, int | float):
                if abs(right) > MAX_POW_EXPONENT:
                    raise SecurityError(f"an exponent of at most {MAX_POW_EXPONENT}")
                if isinstance(left, int) and abs(left).bit_length() * abs(right) > MAX_POW_BITS:
                    raise SecurityError(f"** would build a number of more than {MAX_POW_BITS} bits")
        elif operator == "%" and isinstance(left, str) and _too_wide(left):
            raise SecurityError(f"a format width or precision of at most {MAX_FORMAT_WIDTH}")
        elif operator == "+":
            sizes = (_size(left), _size(right))
            if None not in sizes and sum(sizes) > MAX_OUTPUT_CHARS:  # type: ignore[arg-type]
                raise SecurityError(f"+ would build more than {MAX_OUTPUT_CHARS} items")
        return super().call_binop(context, operator, left, right)

    def _format_filter(self, value: Any, *args: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise SecurityError("format applies to text")
        if _too_wide(value):
            raise SecurityError(f"a format width or precision of at most {MAX_FORMAT_WIDTH}")
        if args and kwargs:
            raise SecurityError("format takes positional or keyword arguments, not both")
        return value % (kwargs or args)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, str) and attr in UNSAFE_STR_METHODS:
            return False
        return bool(super().is_safe_attribute(obj, attr, value))

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        _check_loops(tree, name)
        return tree


def _check_loops(node: nodes.Node, name: str | None, depth: int = 0) -> None:
    for child in node.iter_child_nodes():
        inner = depth + 1 if isinstance(child, nodes.For) else depth
        if inner > MAX_LOOP_DEPTH:
            raise TemplateSyntaxError(
                f"loops nested {inner} deep; at most {MAX_LOOP_DEPTH}", child.lineno, name
            )
        _check_loops(child, name, inner)


_MAIN_THREAD = threading.main_thread().ident


class _Budget:
    """The budgets under way in the main thread, outermost first, and the timer's tick."""

    running: list[tuple[float, str]] = []  # (deadline on the monotonic clock, message)
    tick = 0.0  # the armed timer's interval; 0 when it is not armed


def _expired(signum: int, frame: Any) -> None:
    """The timer's tick: raise in the render under way if a budget has run out; with none under
    way, stop the timer (the next budget starts it again)."""
    running = _Budget.running
    if not running:
        signal.setitimer(signal.ITIMER_REAL, 0)
        _Budget.tick = 0.0
        return
    now = time.monotonic()
    for i, (deadline, message) in enumerate(running):
        if now >= deadline:  # the outermost that ran out ends the ones inside it too
            del running[i:]  # raised once: whatever exits next, no budget of it stays behind
            raise RenderBudgetExceeded(message)


@atexit.register
def _stop_timer() -> None:
    """Stop a timer still ticking when the interpreter ends: it puts SIGALRM back to its default,
    which would end the process with that signal at the next tick."""
    if _Budget.tick and threading.get_ident() == _MAIN_THREAD:
        signal.setitimer(signal.ITIMER_REAL, 0)
        _Budget.tick = 0.0


def time_budget(seconds: float = RENDER_BUDGET_SECONDS) -> _TimeBudget:
    """Raise RenderBudgetExceeded in the code under way once ``seconds`` have passed (a context
    manager), at the latest half of ``seconds`` after.

    The SIGALRM handler is installed once; an interval timer ticks every half budget while
    budgets are in use, and stops itself at the first tick with none under way. A budget only
    notes its deadline: no system call a render (arming and disarming the timer for each
    render was two, some 2 µs of a warning recipient's worker CPU). A budget inside another
    leaves the outer one its own deadline. A class, not a generator: entered once a recipient,
    and ``contextlib``'s machinery would cost more than the budget itself."""
    return _TimeBudget(seconds)


# signal.getsignal is _signal.getsignal wrapped in an enum lookup that raises and catches
# ValueError for a handler that is a function: 3.7 µs of a budget's 8; the C call is 0.06 µs.
_getsignal = _signal.getsignal


class _TimeBudget:
    __slots__ = ("depth", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.depth = -1

    def __enter__(self) -> None:
        if threading.get_ident() != _MAIN_THREAD:  # no signals there: the other limits hold
            return
        if _getsignal(signal.SIGALRM) is not _expired:
            signal.signal(signal.SIGALRM, _expired)
            _Budget.tick = 0.0  # whatever timer ran, it was not ticking for us
        running = _Budget.running
        self.depth = len(running)
        running.append((time.monotonic() + self.seconds, _message(self.seconds)))
        tick = self.seconds / 2
        if not _Budget.tick or tick < _Budget.tick:
            _Budget.tick = tick
            signal.setitimer(signal.ITIMER_REAL, tick, tick)

    def __exit__(self, *exc: object) -> None:
        if self.depth >= 0:
            del _Budget.running[self.depth :]


@lru_cache(maxsize=16)
def _message(seconds: float) -> str:
    return f"rendering took longer than {seconds:g} s"


def render_bounded(template: Template, context: dict[str, Any]) -> str:
    """``template`` rendered within the time budget and the output limit."""
    parts: list[str] = []
    size = 0
    with time_budget():
        for part in template.generate(context):
            size += len(part)
            if size > MAX_OUTPUT_CHARS:
                raise RenderBudgetExceeded(f"more than {MAX_OUTPUT_CHARS} characters of output")
            parts.append(part)
    return "".join(parts)
