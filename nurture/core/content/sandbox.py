"""The template sandbox: Jinja's sandbox, bounded in size, loop iterations and time.

Editors write templates; a template is code the web process (previews, test sends) and every
worker (sends) run. Jinja's ``SandboxedEnvironment`` keeps a template away from Python's
internals, but not from asking for ``{{ 'x' * 10**9 }}`` or a loop of ten billion turns. This
environment adds the limits, enforced where a template could make something big or slow:

- every value a template builds (by ``*``, ``+``, ``~``, ``%``, a filter, a method such as
  ``center`` or ``replace``) and every part it renders stays under ``MAX_OUTPUT`` characters;
  sizes are estimated before the work where the work itself would be the harm;
- whole numbers stay under ``MAX_INT_DIGITS`` digits (``10**100000`` is refused, not computed);
- ``range()`` gives at most ``MAX_RANGE`` numbers and all loops of one mail together turn at most
  ``MAX_LOOP_ITERATIONS`` times;
- one mail renders in at most ``MAX_SECONDS``, checked at every loop turn, call and filter;
- templates cannot change lists or dicts in place (``ImmutableSandboxedEnvironment``).

Going over raises :class:`TemplateLimitError`, whose message names the limit.
"""

from __future__ import annotations

import contextlib
import functools
import math
import re
import string
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, optimizeconst
from jinja2.runtime import LoopContext, markup_join
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import _PassArg, generate_lorem_ipsum

# Ten times what Gmail shows before it clips a mail ("[Message clipped]" after ~102 KB).
MAX_OUTPUT = 1_000_000
MAX_INT_DIGITS = 1_000
MAX_RANGE = 10_000
MAX_LOOP_ITERATIONS = 100_000
MAX_SECONDS = 2.0

_MAX_INT_BITS = int(MAX_INT_DIGITS * math.log2(10)) + 1
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0 +-]*(\*|\d+)?(?:\.(\*|\d+))?")
_DIGITS = re.compile(r"\d+")


class TemplateLimitError(Exception):
    """A template went over one of the sandbox's limits; ``limit`` names which."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit


def _over_size(what: str, size: int) -> TemplateLimitError:
    return TemplateLimitError(
        "output",
        f"{what} would make {size:,} characters; a template may make at most {MAX_OUTPUT:,}",
    )


class Budget:
    """What one mail may still spend: loop turns, and time until ``deadline``."""

    __slots__ = ("deadline", "seconds", "turns_left")

    def __init__(self, seconds: float = MAX_SECONDS, iterations: int = MAX_LOOP_ITERATIONS) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.turns_left = iterations

    def check_time(self) -> None:
        """Refuse to go on once the mail has taken its time."""
        if time.monotonic() > self.deadline:
            raise TemplateLimitError(
                "time", f"rendering took longer than {self.seconds:g} seconds, the limit"
            )

    def turn(self) -> None:
        """Count one loop turn."""
        self.turns_left -= 1
        if self.turns_left < 0:
            raise TemplateLimitError(
                "loops",
                f"the loops turn more than {MAX_LOOP_ITERATIONS:,} times in one mail, the limit",
            )
        self.check_time()


_active: ContextVar[Budget | None] = ContextVar("nurture_template_budget", default=None)


@contextlib.contextmanager
def budget(seconds: float = MAX_SECONDS) -> Iterator[Budget]:
    """One mail's budget for the renders inside; a render inside another shares the outer one."""
    current = _active.get()
    if current is not None:
        yield current
        return
    fresh = Budget(seconds)
    token = _active.set(fresh)
    try:
        yield fresh
    finally:
        _active.reset(token)


def _check_time() -> None:
    current = _active.get()
    if current is not None:
        current.check_time()


# --- sizes ---------------------------------------------------------------------------------------


def weight(value: Any, limit: int = MAX_OUTPUT) -> int:
    """About how many characters ``str(value)`` has, counting no further than just past ``limit``.

    Counts every occurrence, as ``str`` would: a list holding one long string ten times weighs
    ten of them, however little memory it takes.
    """
    if isinstance(value, str):
        return len(value)
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, bool) or item is None or isinstance(item, float):
            total += 5
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 1
        elif isinstance(item, list | tuple | set | frozenset | deque):
            total += 2 + 2 * len(item)
            if total <= limit:
                stack.extend(item)
        elif isinstance(item, Mapping):
            total += 2 + 4 * len(item)
            if total <= limit:
                stack.extend(item.keys())
                stack.extend(item.values())
        else:
            total += 8  # our own small objects: undefined values, loop state, macros
        if total > limit:
            return total
    return total


def _check_value(value: Any, what: str) -> None:
    """Refuse a value whose text would be over the limit (or a number over its digits)."""
    if isinstance(value, str):
        if len(value) > MAX_OUTPUT:
            raise _over_size(what, len(value))
        return
    if isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > _MAX_INT_BITS:
            raise _over_digits(what)
        return
    if isinstance(value, float) or value is None:
        return
    size = weight(value)
    if size > MAX_OUTPUT:
        raise _over_size(what, size)


def _over_digits(what: str) -> TemplateLimitError:
    return TemplateLimitError(
        "number",
        f"{what} would make a number of more than {MAX_INT_DIGITS:,} digits, the limit",
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_width(width: Any, what: str) -> None:
    if _is_int(width) and width > MAX_OUTPUT:
        raise _over_size(what, width)


def _replaced_size(text: str, old: Any, new: Any, count: Any = -1) -> int:
    if not isinstance(old, str) or not isinstance(new, str):
        return len(text)
    found = len(text) + 1 if old == "" else text.count(old)
    if _is_int(count) and count >= 0:
        found = min(found, count)
    return len(text) + found * (len(new) - len(old))


def _check_percent(template: str, args: Any) -> None:
    """``'%5d' % x`` with a width that is a number we accept, and arguments of a fair size."""
    for found in _PERCENT_SPEC.finditer(template):
        for part in found.groups():
            if part == "*":
                raise TemplateLimitError("output", "a * width in % formatting is not allowed")
            if part is not None and int(part) > MAX_OUTPUT:
                raise _over_size("a % format width", int(part))
    _check_value(args, "the values formatted with %")


def _check_format(template: str) -> None:
    """``'{:>5}'.format(x)`` with fixed, fair widths (no nested ``{}`` in a spec)."""
    for _, _, spec, _ in string.Formatter().parse(template):
        if not spec:
            continue
        if "{" in spec:
            raise TemplateLimitError("output", "nested {} in a format spec are not allowed")
        for number in _DIGITS.findall(spec):
            if int(number) > MAX_OUTPUT:
                raise _over_size("a format width", int(number))


# --- operators -----------------------------------------------------------------------------------


def _multiply(left: Any, right: Any) -> Any:
    if _is_int(left) and _is_int(right):
        if left.bit_length() + right.bit_length() > _MAX_INT_BITS:
            raise _over_digits("multiplying")
    for sequence, times in ((left, right), (right, left)):
        if _is_int(times) and isinstance(sequence, str | list | tuple):
            size = weight(sequence) * max(times, 0)
            if size > MAX_OUTPUT:
                kind = "text" if isinstance(sequence, str) else "a list"
                raise _over_size(f"repeating {kind} {times:,} times", size)
    return left * right


def _power(base: Any, exponent: Any) -> Any:
    if _is_int(base) and _is_int(exponent) and exponent > 0 and abs(base) > 1:
        if exponent * math.log10(abs(base)) > MAX_INT_DIGITS:
            raise _over_digits(f"raising to the power {exponent:,}")
    return base**exponent


def _add(left: Any, right: Any) -> Any:
    if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
        size = weight(left) + weight(right)
        if size > MAX_OUTPUT:
            raise _over_size("adding", size)
    return left + right


def _modulo(left: Any, right: Any) -> Any:
    if isinstance(left, str):
        _check_percent(left, right)
        result = left % right
        _check_value(result, "% formatting")
        return result
    return left % right


_BINOPS: dict[str, Callable[[Any, Any], Any]] = {
    "*": _multiply,
    "**": _power,
    "+": _add,
    "%": _modulo,
}


# --- loops, joins and the rendered output --------------------------------------------------------


class counted:  # noqa: N801 - read as a function in compiled templates
    """An iterable whose every item costs the mail one loop turn (wraps each ``{% for %}``)."""

    __slots__ = ("_iterable",)

    def __init__(self, iterable: Any) -> None:
        self._iterable = iterable

    def __iter__(self) -> Iterator[Any]:
        spend = _active.get() or Budget()
        for item in self._iterable:
            spend.turn()
            yield item

    def __len__(self) -> int:
        return len(self._iterable)  # TypeError for generators, which LoopContext expects


def bounded_concat(chunks: Any) -> str:
    """``"".join`` for rendered output and captured blocks, refusing more than ``MAX_OUTPUT``."""
    # Chunks are references to strings already bounded (and loops to their turns), so holding
    # the list before summing costs little, and summing in C keeps a render fast.
    parts = list(chunks)
    total = sum(map(len, parts))
    if total > MAX_OUTPUT:
        raise _over_size("the rendered mail", total)
    return "".join(parts)


def _join_str(items: Any) -> str:
    """The ``~`` operator, bounded."""
    parts = []
    total = 0
    for item in items:
        _check_value(item, "joining with ~")
        text = str(item)
        total += len(text)
        if total > MAX_OUTPUT:
            raise _over_size("joining with ~", total)
        parts.append(text)
    return "".join(parts)


def _join_markup(items: Any) -> str:
    """The ``~`` operator in autoescaped HTML, bounded."""
    items = list(items)
    size = sum(weight(item) for item in items)
    if size > MAX_OUTPUT:
        raise _over_size("joining with ~", size)
    result = markup_join(items)
    _check_value(result, "joining with ~")
    return result


def finalize(value: Any) -> Any:
    """What ``{{ value }}`` prints: nothing for None, and never more than the limit."""
    if value is None:
        return ""
    if not isinstance(value, str | int | float):
        _check_value(value, "printing a value")
    return value


class _BoundedCodeGenerator(CodeGenerator):
    """Jinja's compiler, with every loop counted and ``~`` bounded."""

    def visit_Template(self, node: nodes.Template, frame: Any = None) -> None:
        for loop in node.find_all(nodes.For):
            if not _is_counted(loop.iter):
                loop.iter = nodes.Call(
                    nodes.ImportedName(f"{__name__}.counted"),
                    [loop.iter],
                    [],
                    None,
                    None,
                    lineno=loop.iter.lineno,
                )
        super().visit_Template(node, frame)

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Any) -> None:
        if frame.eval_ctx.volatile:
            join = (
                "(environment.join_markup if context.eval_ctx.volatile else environment.join_str)"
            )
        elif frame.eval_ctx.autoescape:
            join = "environment.join_markup"
        else:
            join = "environment.join_str"
        self.write(f"{join}((")
        for argument in node.nodes:
            self.visit(argument, frame)
            self.write(", ")
        self.write("))")


def _is_counted(node: nodes.Node) -> bool:
    return (
        isinstance(node, nodes.Call)
        and isinstance(node.node, nodes.ImportedName)
        and node.node.importname == f"{__name__}.counted"
    )


class BoundedTemplate(jinja2.Template):
    """A template whose every render runs within a :func:`budget`."""

    def render(self, *args: Any, **kwargs: Any) -> str:
        """Render within the active budget, or a fresh one."""
        with budget():
            return super().render(*args, **kwargs)

    def generate(self, *args: Any, **kwargs: Any) -> Iterator[str]:
        """Stream within a budget, refusing more output than the limit."""
        with budget():
            total = 0
            for chunk in super().generate(*args, **kwargs):
                total += len(chunk)
                if total > MAX_OUTPUT:
                    raise _over_size("the rendered mail", total)
                yield chunk


# --- filters and calls ---------------------------------------------------------------------------


def _estimate_indent(value: Any, width: Any = 4, *args: Any, **kwargs: Any) -> None:
    pad = len(width) if isinstance(width, str) else width if _is_int(width) else 4
    text = str(value) if isinstance(value, str) else ""
    size = len(text) + (text.count("\n") + 1) * max(pad, 0)
    if size > MAX_OUTPUT:
        raise _over_size("the indent filter", size)


def _estimate_wordwrap(
    value: Any, width: Any = 79, break_long_words: Any = True, wrapstring: Any = None, **_: Any
) -> None:
    text = value if isinstance(value, str) else ""
    wrap = wrapstring if isinstance(wrapstring, str) else "\n"
    step = width if _is_int(width) and width > 0 else 1
    size = len(text) + (len(text) // step + text.count("\n") + 1) * len(wrap)
    if size > MAX_OUTPUT:
        raise _over_size("the wordwrap filter", size)


def _estimate_replace(value: Any, old: Any = "", new: Any = "", count: Any = None) -> None:
    if isinstance(value, str):
        size = _replaced_size(value, old, new, -1 if count is None else count)
        if size > MAX_OUTPUT:
            raise _over_size("the replace filter", size)


def _estimate_join(value: Any, d: Any = "", attribute: Any = None) -> None:
    items = value if isinstance(value, list | tuple | set | str) else []
    size = weight(items) + len(items) * (len(d) if isinstance(d, str) else 0)
    if size > MAX_OUTPUT:
        raise _over_size("the join filter", size)


def _estimate_center(value: Any, width: Any = 80) -> None:
    _check_width(width, "the center filter")


def _estimate_format(value: Any, *args: Any, **kwargs: Any) -> None:
    if isinstance(value, str):
        _check_percent(value, kwargs or args)


def _estimate_pieces(value: Any, count: Any = 1, *args: Any, **kwargs: Any) -> None:
    if _is_int(count) and count > MAX_RANGE:
        raise TemplateLimitError(
            "output", f"batch or slice into {count:,} pieces; the limit is {MAX_RANGE:,}"
        )


_FILTER_CHECKS: dict[str, Callable[..., None]] = {
    "batch": _estimate_pieces,
    "center": _estimate_center,
    "format": _estimate_format,
    "indent": _estimate_indent,
    "join": _estimate_join,
    "replace": _estimate_replace,
    "slice": _estimate_pieces,
    "wordwrap": _estimate_wordwrap,
}


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` with its inputs, its known amplifications and its result kept under the limits."""
    skip = 1 if _PassArg.from_obj(func) is not None else 0
    check = _FILTER_CHECKS.get(name)
    what = f"the {name} filter"

    @functools.wraps(func)  # keeps jinja_pass_arg, so Jinja passes the same first argument
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _check_time()
        values = args[skip:]
        for value in (*values, *kwargs.values()):
            _check_value(value, what)
        if check is not None and values:
            if name in ("join",) and not isinstance(values[0], list | tuple | set | str):
                # Materialise a generator once, so its size is known before joining.
                values = (list(values[0]), *values[1:])
                args = (*args[:skip], *values)
            check(*values, **kwargs)
        result = func(*args, **kwargs)
        _check_value(result, what)
        return result

    return bounded


def _check_str_method(
    owner: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, ...]:
    """Estimate what a string method would make before it makes it; returns the arguments."""
    what = f"str.{name}"
    if name in ("center", "ljust", "rjust", "zfill") and args:
        _check_width(args[0], what)
    elif name == "expandtabs":
        tabsize = args[0] if args else kwargs.get("tabsize", 8)
        if _is_int(tabsize):
            size = len(owner) + owner.count("\t") * tabsize
            if size > MAX_OUTPUT:
                raise _over_size(what, size)
    elif name == "replace" and len(args) >= 2:
        size = _replaced_size(owner, args[0], args[1], args[2] if len(args) > 2 else -1)
        if size > MAX_OUTPUT:
            raise _over_size(what, size)
    elif name == "join" and args:
        items = list(args[0])
        size = weight(items) + len(items) * len(owner)
        if size > MAX_OUTPUT:
            raise _over_size(what, size)
        args = (items, *args[1:])
    return args


def _bounded_lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:  # noqa: A002
    """Jinja's placeholder text, at most 20 paragraphs of at most 200 words."""
    if not all(_is_int(v) for v in (n, min, max)) or n > 20 or max > 200:
        raise TemplateLimitError("output", "lipsum makes at most 20 paragraphs of 200 words")
    return generate_lorem_ipsum(n=n, html=html, min=min, max=max)


def _bounded_range(*args: Any) -> range:
    """``range()``, giving at most ``MAX_RANGE`` numbers."""
    numbers = range(*args)
    try:
        size = len(numbers)
    except OverflowError:  # more than a machine word can count
        size = None
    if size is None or size > MAX_RANGE:
        given = "far more" if size is None else f"{size:,}"
        raise TemplateLimitError(
            "range", f"range() may give at most {MAX_RANGE:,} numbers, not {given}"
        )
    return numbers


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox every edited template renders in; see the module's docstring for the limits."""

    code_generator_class = _BoundedCodeGenerator
    template_class = BoundedTemplate
    intercepted_binops = frozenset(_BINOPS)

    def __init__(self, **options: Any) -> None:
        options.setdefault("finalize", finalize)
        super().__init__(**options)
        self.concat = bounded_concat  # type: ignore[method-assign]
        self.join_str = _join_str
        self.join_markup = _join_markup
        self.globals["range"] = _bounded_range
        self.globals["lipsum"] = _bounded_lipsum
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        """Also refuse ``str.translate``: a table can turn each character into a long text."""
        if isinstance(obj, str) and attr in ("translate", "maketrans"):
            return False
        return super().is_safe_attribute(obj, attr, value)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        """``*``, ``**``, ``+`` and ``%``, refusing results over the limits."""
        _check_time()
        return _BINOPS[operator](left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        """Every call a template makes: in time, with fair arguments and a fair result."""
        _check_time()
        for value in (*args, *kwargs.values()):
            _check_value(value, "a call's argument")
        if isinstance(__obj, LoopContext) and args:
            args = (counted(args[0]), *args[1:])  # loop(children) in a recursive loop
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            args = _check_str_method(owner, getattr(__obj, "__name__", ""), args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        _check_value(result, "a call's result")
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``str.format`` with fair widths and a fair result."""
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        _check_format(value.__self__)

        @functools.wraps(wrapper)
        def bounded(*args: Any, **kwargs: Any) -> str:
            for argument in (*args, *kwargs.values()):
                _check_value(argument, "the values formatted")
            result = wrapper(*args, **kwargs)
            _check_value(result, "str.format")
            return result

        return bounded
