"""Chat templates: Jinja rendering with the environment transformers uses, so a template from a
``tokenizer_config.json`` renders character for character as ``apply_chat_template`` does."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from .errors import Qwen25ValueError


@functools.lru_cache(maxsize=8)
def _compile(template: str) -> Any:
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None, sort_keys: bool = False) -> str:
        # Jinja's own tojson escapes HTML characters; chat templates need plain JSON.
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt: str) -> str:
        return datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env.from_string(template)


def _plain(x: Any) -> Any:
    """A fresh copy made of dicts, lists and scalars, so the template never edits the caller's data."""
    if isinstance(x, Mapping):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def _check_calls(calls: Any, where: str) -> None:
    """A message's ``tool_calls``: a list of ``{"function": {"name", "arguments"}}`` (or the flat
    ``{"name", "arguments"}``) dicts, ``arguments`` a dict or a JSON string."""
    if isinstance(calls, (str, bytes, Mapping)) or not isinstance(calls, Sequence):
        raise Qwen25ValueError(f"{where}.tool_calls must be a list of calls, not {type(calls).__name__}")
    for j, call in enumerate(calls):
        at = f"{where}.tool_calls[{j}]"
        if not isinstance(call, Mapping):
            raise Qwen25ValueError(f"{at} must be a dict, not {type(call).__name__}")
        fn = call.get("function", call)
        if "function" in call:
            at += ".function"
            if not isinstance(fn, Mapping):
                raise Qwen25ValueError(f"{at} must be a dict with name and arguments, not {type(fn).__name__}")
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            raise Qwen25ValueError(f"{at} needs a non-empty string 'name', got {name!r}")
        if "arguments" not in fn:
            raise Qwen25ValueError(f"{at} ({name}) has no 'arguments'")
        args = fn["arguments"]
        if isinstance(args, str):
            try:
                json.loads(args)
            except json.JSONDecodeError as e:
                raise Qwen25ValueError(
                    f"{at}.arguments ({name}) is a string but not JSON: {e.msg} at column {e.colno}"
                ) from None
        elif not isinstance(args, Mapping):
            raise Qwen25ValueError(f"{at}.arguments ({name}) must be a dict or a JSON string, not {type(args).__name__}")


def check_messages(messages: Any, tools: Any = None) -> None:
    """Refuse, naming the message and the key, what no chat template can render faithfully: an
    empty list, a message that is not a dict or has no string ``role``, a missing or ``None``
    ``content`` (allowed only on an assistant turn with tool calls), and malformed ``tool_calls``.
    Anything transformers renders correctly passes unchanged."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise TypeError(f"messages must be a list of dicts, not {type(messages).__name__}")
    if not messages:
        raise Qwen25ValueError("messages is empty: a chat template needs at least one message")
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, Mapping):
            raise TypeError(f"{where} must be a dict, not {type(m).__name__}")
        role = m.get("role")
        if not isinstance(role, str) or not role:
            raise Qwen25ValueError(f"{where} has no 'role' (a non-empty string), got {role!r}")
        calls = m.get("tool_calls")
        if calls is not None:
            _check_calls(calls, where)
        content = m.get("content")
        if content is None and not (role == "assistant" and calls):
            what = "'content': None" if "content" in m else "no 'content'"
            raise Qwen25ValueError(f"{where} ({role}) has {what}" + (" and no tool_calls" if role == "assistant" else ""))
    if tools is not None:
        if isinstance(tools, (str, bytes, Mapping)) or not isinstance(tools, Sequence):
            raise TypeError(f"tools must be a list of JSON-schema dicts, not {type(tools).__name__}")
        for i, t in enumerate(tools):
            if not isinstance(t, Mapping):
                raise TypeError(f"tools[{i}] must be a JSON-schema dict, not {type(t).__name__}")


def _render_failed(e: Exception, messages: Sequence[Mapping[str, Any]]) -> Qwen25ValueError:
    """The error for a template that failed on messages that passed :func:`check_messages`: name
    the first message whose content is not a string (the usual cause), else the template's own words."""
    for i, m in enumerate(messages):
        c = m.get("content")
        if c is not None and not isinstance(c, str):
            return Qwen25ValueError(f"messages[{i}] ({m.get('role')}) 'content' is a {type(c).__name__}, which this chat "
                                    f"template cannot render ({type(e).__name__}: {e})")  # fmt: skip
    return Qwen25ValueError(f"the chat template failed on these messages: {type(e).__name__}: {e}")


def render(
    template: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    add_generation_prompt: bool = False,
    **kwargs: Any,
) -> str:
    """Render ``messages`` (checked by :func:`check_messages`) with ``template``. Every failure is a
    :class:`Qwen25ValueError` (a ``ValueError``) naming the message, or the template's line."""
    import jinja2

    check_messages(messages, tools)
    try:
        compiled = _compile(template)
    except jinja2.TemplateSyntaxError as e:
        raise Qwen25ValueError(f"the chat template does not parse: line {e.lineno}: {e.message}") from None
    try:
        return compiled.render(
            messages=_plain(list(messages)),
            tools=_plain(list(tools)) if tools is not None else None,
            documents=None,
            add_generation_prompt=add_generation_prompt,
            **kwargs,
        )
    except (jinja2.TemplateError, TypeError, ValueError, KeyError, AttributeError, IndexError) as e:
        if type(e) is jinja2.TemplateError:  # raise_exception() in the template: its own message
            raise Qwen25ValueError(f"the chat template refused these messages: {e}") from None
        raise _render_failed(e, messages) from None
