"""Sphinx extension: pages generated from the code, so they cannot drift from it.

At ``builder-inited`` (before Sphinx reads any source) this writes, under
``docs/_generated/``:

* ``config.md``: every key of a run configuration, from the frozen
  dataclasses of :mod:`tomofem.config` (type, default, allowed range, doc);
* ``cli.md``: ``tomofem --help`` and every subcommand's help, from
  :func:`tomofem.cli.build_parser`;
* ``demos/``: one page per ``demos/*.py`` (jupytext light format, read with
  jupytext and written as MyST markdown, not executed) with its ``.ipynb``
  to download, and an index page that works for any number of demos
  (including none).

Files are only rewritten when their text changes, so incremental builds stay
incremental.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import re
import typing
from pathlib import Path
from typing import Any

GENERATED = "_generated"


def _write(path: Path, text: str) -> None:
    """Write ``text`` unless the file already holds it (keeps Sphinx's cache valid)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


# --------------------------------------------------------------------------- config reference


def attribute_docs(cls: type) -> dict[str, str]:
    """Field descriptions from the numpy-style ``Attributes`` section of ``cls``'s docstring."""
    lines = (inspect.getdoc(cls) or "").splitlines()
    out: dict[str, str] = {}
    try:
        i = lines.index("Attributes") + 2
    except ValueError:
        return out
    names: list[str] = []
    buf: list[str] = []

    def flush() -> None:
        for n in names:
            out[n] = " ".join(buf)

    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line and not line.startswith(" ") and nxt.strip() and set(nxt.strip()) == {"-"}:
            break  # the next section
        if line and not line.startswith(" "):
            flush()
            names, buf = [n.strip() for n in line.split(",")], []
        elif line.strip():
            buf.append(line.strip())
        i += 1
    flush()
    return out


def _limits(meta: typing.Mapping[str, Any]) -> str:
    words = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}
    parts = [f"{words[k]} {meta[k]}" for k in ("ge", "gt", "le", "lt") if k in meta]
    if "min_len" in meta:
        parts.append(f"at least {meta['min_len']} entries")
    return ", ".join(parts)


def _default(value: Any) -> str:
    from tomofem.config import to_dict

    if value is None:
        return "unset"
    return json.dumps(to_dict(value), ensure_ascii=False)


_RST_ROLE = re.compile(r":(func|class|mod|meth|attr|data|exc|obj):`~?([^`]+)`")


def _myst(text: str) -> str:
    """Turn a docstring fragment into MyST: reST ``:func:`x``` becomes ``{py:func}`x```."""
    return _RST_ROLE.sub(lambda m: f"{{py:{m.group(1)}}}`{m.group(2)}`", text)


def _cell(text: str) -> str:
    return _myst(text).replace("|", "\\|").replace("\n", " ")


def config_rows(cls: type, obj: Any, prefix: str = "") -> list[tuple[str, str, str, str, str]]:
    """(key path, type, default, range, doc) of every leaf key of dataclass ``cls``."""
    from tomofem.config import _type_name

    hints = typing.get_type_hints(cls)
    docs = attribute_docs(cls)
    rows = []
    for f in dataclasses.fields(cls):
        tp, value = hints[f.name], getattr(obj, f.name)
        path = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(tp):
            rows.extend(config_rows(tp, value, path + "."))  # type: ignore[arg-type]
            continue
        doc = f.metadata.get("doc") or docs.get(f.name, "")
        rows.append((path, _type_name(tp), _default(value), _limits(f.metadata), doc))
    return rows


def config_reference() -> str:
    """MyST page: one table per section of :class:`tomofem.config.RunConfig`."""
    from tomofem.config import RunConfig, describe

    rows = config_rows(RunConfig, RunConfig())
    if [r[0] for r in rows] != [r[0] for r in describe(RunConfig)]:  # same walk as the API's
        raise RuntimeError("config reference and tomofem.config.describe disagree on the keys")
    sections: dict[str, list] = {}
    for row in rows:
        head = row[0].split(".")[0] if "." in row[0] else ""
        sections.setdefault(head, []).append(row)
    out = [
        "(config-reference)=",
        "# Configuration reference",
        "",
        "Every key a run configuration (`--config run.toml`) accepts, generated from the",
        "frozen dataclasses in `tomofem/config.py` when these docs are built. All keys are",
        "optional; a missing key keeps the default shown. Flags and `--set KEY=VALUE`",
        "override the file, with the same dotted key paths. Unknown keys, wrong types and",
        "out-of-range values are all reported at once, each with its key path, before any",
        "work starts.",
        "",
    ]
    for head, items in sections.items():
        cls = RunConfig if not head else type(getattr(RunConfig(), head))
        title = "Top level" if not head else f"`[{head}]`"
        out += [f"## {title}", ""]
        summary = (inspect.getdoc(cls) or "").split("\n\n")[0].replace("\n", " ")
        if head:
            out += [f"{_myst(summary)} ({{py:class}}`{cls.__module__}.{cls.__qualname__}`)", ""]
        out += ["| key | type | default | range | meaning |", "|---|---|---|---|---|"]
        for path, tp, default, rng, doc in items:
            out.append(
                f"| `{path}` | {_cell(tp)} | `{_cell(default)}` | {_cell(rng)} | {_cell(doc)} |"
            )
        out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------------- CLI reference


def cli_reference() -> str:
    """MyST page with the help text of ``tomofem`` and of every subcommand."""
    from tomofem.cli import build_parser

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "92"  # argparse wraps to the terminal: fix it for the page
    try:
        parser = build_parser()
        out = [
            "(cli-reference)=",
            "# Command-line reference",
            "",
            "The help of every subcommand, generated from `tomofem.cli.build_parser` when",
            "these docs are built (what `tomofem COMMAND --help` prints).",
            "",
            "## `tomofem`",
            "",
            "```text",
            parser.format_help().rstrip(),
            "```",
            "",
        ]
        for name, sub in _subparsers(parser).items():
            out += [f"## `tomofem {name}`", "", "```text", sub.format_help().rstrip(), "```", ""]
            for name2, sub2 in _subparsers(sub).items():
                out += [f"### `tomofem {name} {name2}`", "", "```text"]
                out += [sub2.format_help().rstrip(), "```", ""]
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old
    return "\n".join(out)


def _subparsers(parser: Any) -> dict[str, Any]:
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


# --------------------------------------------------------------------------- demos


def demo_files(root: Path) -> list[Path]:
    """Return the demo notebooks: ``demos/*.py`` except private helpers and conftest."""
    return sorted(
        p
        for p in (root / "demos").glob("*.py")
        if not p.name.startswith(("_", "conftest", "test_"))
    )


def demo_page(path: Path, out_dir: Path) -> str:
    """Write ``NAME.md`` (MyST) and ``NAME.ipynb`` for one jupytext demo; return the page name."""
    import jupytext

    nb = jupytext.read(path)
    _write(out_dir / f"{path.stem}.ipynb", jupytext.writes(nb, fmt="ipynb"))
    parts: list[str] = []
    code: list[str] = []  # consecutive code cells read as one block
    for cell in nb.cells:
        src = cell.source.strip("\n")
        if not src.strip() or cell.cell_type not in ("markdown", "code"):
            continue
        if cell.cell_type == "code":
            code.append(src)
            continue
        if code:
            parts.append("```python\n" + "\n\n".join(code) + "\n```")
            code = []
        parts.append(src)
    if code:
        parts.append("```python\n" + "\n\n".join(code) + "\n```")
    if not parts or not re.match(r"#\s", parts[0]):
        parts.insert(0, f"# {path.stem.replace('_', ' ')}")
    title, rest = parts[0].split("\n", 1) if "\n" in parts[0] else (parts[0], "")
    note = (
        f"*Rendered from `demos/{path.name}` (jupytext light format) without executing it.*"
        f" Download it as a notebook: {{download}}`{path.stem}.ipynb <{path.stem}.ipynb>`,"
        f" or run it as a script: `python demos/{path.name}`."
    )
    body = "\n\n".join([title, note] + ([rest.strip()] if rest.strip() else []) + parts[1:])
    _write(out_dir / f"{path.stem}.md", body + "\n")
    return path.stem


def demos_index(root: Path, out_dir: Path) -> str:
    """Pages of all demos and their index (which works with none)."""
    names = [demo_page(p, out_dir) for p in demo_files(root)]
    for stale in out_dir.glob("*.md"):  # demos removed since the last build
        if stale.stem != "index" and stale.stem not in names:
            stale.unlink()
    lines = [
        "(demos)=",
        "# Demo notebooks",
        "",
        "Literate scripts in `demos/` (jupytext *light* format, maths in MyST). Each has a",
        "fast mode that the test suite runs serially and on 2 MPI ranks. Convert them to",
        "notebooks with `make notebooks` (or `jupytext --to ipynb demos/NAME.py`), or run one",
        "as a script. The pages below are rendered from the sources without executing them.",
        "",
    ]
    if names:
        lines += ["```{toctree}", ":maxdepth: 1", "", *names, "```", ""]
    else:
        lines += ["*This checkout has no demo notebooks yet (`demos/*.py`).*", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- docstrings

_SECTION = re.compile(r"^(Attributes|Parameters|Other Parameters)$")


def split_grouped_fields(app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]):
    """Before napoleon: ``a, b`` entries of Attributes sections become one entry per name.

    The house style documents related fields together (``dt_initial, dt_min,
    dt_max``); napoleon handles that for parameters but turns it into a type
    for attributes. An attribute docstring that starts with ``Text: more``
    would likewise be read as ``type: description``; an empty type is put in front.
    """
    if what in ("attribute", "property", "data") and lines and ": " in lines[0]:
        lines[0] = ": " + lines[0]
    out: list[str] = []
    i, section = 0, None
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if nxt.strip() and set(nxt.strip()) == {"-"} and line.strip():
            section = line.strip() if _SECTION.match(line.strip()) else None
            out += [line, nxt]
            i += 2
            continue
        head = line.strip()
        if (
            section == "Attributes"
            and line
            and not line[0].isspace()
            and "," in head
            and " : " not in head
        ):
            body = []
            j = i + 1
            while j < len(lines) and (not lines[j] or lines[j][0].isspace()):
                body.append(lines[j])
                j += 1
            while body and not body[-1].strip():
                body.pop()
            for n in (x.strip() for x in head.split(",")):
                out += [n, *body]
            out.append("")
            i = j
            continue
        out.append(line)
        i += 1
    lines[:] = out


def resolve_short_names(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """Resolve ``ConfigError`` / ``RunFolder.create`` style references tomofem's docstrings use.

    Docstrings name tomofem objects by their short name; when exactly one
    documented object ends with that name, link to it. Private helpers and
    undocumented module data (``_size_view``, ``ELECTRODES``) exist in the
    code but not in the docs: they are shown as plain code, not as a warning.
    """
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    domain = env.get_domain("py")
    suffix = "." + target.lstrip(".~")
    hits = sorted(
        n
        for n, o in domain.objects.items()
        if n.startswith("tomofem.") and n.endswith(suffix) and not getattr(o, "aliased", False)
    )
    if len(hits) > 1:  # an exception is named after its home, tomofem.errors
        hits = [h for h in hits if h.startswith("tomofem.errors.")] or hits
    if len(hits) == 1:
        from sphinx.util.nodes import make_refnode

        obj = domain.objects[hits[0]]
        return make_refnode(app.builder, node["refdoc"], obj.docname, obj.node_id, contnode)
    if target.startswith("tomofem."):  # a re-export: link to the object's home
        home = _home(target)
        if home in domain.objects:
            from sphinx.util.nodes import make_refnode

            obj = domain.objects[home]
            return make_refnode(app.builder, node["refdoc"], obj.docname, obj.node_id, contnode)
    last = target.split(".")[-1]
    if last.startswith("_") or "._" in target:
        return contnode
    module = node.get("py:module") or ""
    if module.startswith("tomofem"):
        import importlib

        try:
            if hasattr(importlib.import_module(module), last):
                return contnode
        except ImportError:
            return None
    return None


def _home(dotted: str) -> str | None:
    """``module.qualname`` where the object ``dotted`` names is defined, or None."""
    import importlib

    mod, _, attr = dotted.rpartition(".")
    try:
        obj = getattr(importlib.import_module(mod), attr)
    except (ImportError, AttributeError, ValueError):
        return None
    home = getattr(obj, "__module__", None)
    qual = getattr(obj, "__qualname__", None)
    return f"{home}.{qual}" if home and qual else None


# --------------------------------------------------------------------------- hook


def generate(app: Any) -> None:
    """Write every generated page into ``<srcdir>/_generated``."""
    src = Path(app.srcdir)
    root = Path(app.config.tomofem_root or src.parent).resolve()
    gen = src / GENERATED
    _write(gen / "config.md", config_reference())
    _write(gen / "cli.md", cli_reference())
    _write(gen / "demos" / "index.md", demos_index(root, gen / "demos"))
    remove_stale_api_stubs(gen / "api")


def remove_stale_api_stubs(api_dir: Path) -> None:
    """Delete autosummary stubs of modules that no longer exist (autosummary only adds)."""
    import importlib.util

    for stub in api_dir.glob("*.rst"):
        try:
            gone = importlib.util.find_spec(stub.stem) is None
        except ModuleNotFoundError:  # a parent package is gone too
            gone = True
        if gone:
            stub.unlink()


def setup(app: Any) -> dict[str, Any]:
    """Register the generator (and the ``tomofem_root`` config value)."""
    app.add_config_value("tomofem_root", "", "env")
    app.connect("builder-inited", generate)
    app.connect("autodoc-process-docstring", split_grouped_fields, priority=400)
    app.connect("missing-reference", resolve_short_names)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
