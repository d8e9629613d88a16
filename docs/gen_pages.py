"""The pages of the documentation site that are generated when it is built (``docs/conf.py`` calls :func:`generate`).

Nothing here is edited by hand for a new method, tutorial or benchmark record:

- :func:`method_pages`: one page per registered method (``bayesdrop.methods.names()``, :func:`bayesdrop.methods.info`)
  and one per method family (the module that defines the method's class, whose docstring writes out the model and
  the guide), and an index with the registry as a table;
- :func:`tutorial_pages`: ``tutorials/*.py`` (jupytext percent scripts) as Markdown pages, not executed, each
  figure of ``tutorials/output/`` shown after the cell that saves it and the script's recorded log at the end;
- :func:`benchmark_pages`: ``benchmarks/results/*.md`` and the figures they show;
- :func:`generate`: also the pages made of the README's sections (:data:`README_PAGES`: the quick start, ...) and
  the changelog.

Links between the repository's Markdown files (``../benchmarks/results/defaults.md``, ``docs/architecture.md``,
``#benchmarks``) are rewritten to the pages of the site by :func:`rewrite_links`, which ``docs/conf.py`` also
applies to the hand-written pages in ``docs/`` as Sphinx reads them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
GEN = DOCS / "_gen"  # everything generated goes here (git-ignored, rebuilt by every build)

README_PAGES = {  # the README's sections on each page made from it (the first one's heading becomes the title)
    "quickstart.md": [
        "Quick start",
        "The library in ten lines",
        "The plain-Pyro path",
        "Analysis and compression",
        "Command line",
        "Scaling out",
    ],
    "methods_overview.md": ["Methods"],
    "tutorials/index.md": ["Tutorials"],
    "benchmarks/index.md": ["Benchmarks"],
    "development.md": ["Development"],
}


# -- links -----------------------------------------------------------------------------------------------------------
_LINK = re.compile(r"(!?)\[((?:[^\[\]]|\[[^\]]*\])*)\]\(([^()\s]+)\)")


def slug(name: str) -> str:
    """A file name for a method or heading: ``"dropout++(0.5)"`` -> ``"dropout-pp-0-5"``."""
    s = name.lower().replace("++", "-pp-").replace("+", "-plus-")
    s = re.sub(r"[^a-z0-9]+", "-", s).strip("-")
    return s or "x"


def heading_anchor(title: str) -> str:
    """The anchor MyST gives a heading (GitHub's rule): lower case, punctuation dropped, spaces to hyphens."""
    s = re.sub(r"[^\w\- ]", "", title.strip().lower())
    return s.replace(" ", "-")


def rewrite_links(text: str, origin: Path, page: Path, pages: dict[Path, Path], anchors: dict[str, Path]) -> str:
    """Point the relative links of Markdown ``text`` at the pages of the site.

    Parameters
    ----------
    text : str
        Markdown whose links are relative to ``origin``, the file it was read from.
    origin : Path
        The file in the repository ``text`` comes from.
    page : Path
        The file in the site's source tree that will hold ``text``.
    pages : dict of Path to Path
        A file of the repository (absolute) to the file of the site that stands for it (a page or a copied
        figure).
    anchors : dict of str to Path
        For links to a heading of ``origin`` alone (``#benchmarks``) whose section is not on ``page``: the anchor
        to the page that holds it.

    Returns
    -------
    str
        ``text`` with each link to a file of the site made relative to ``page``; a link to a file of the repository
        that is not in the site becomes its text with the path in code, and web links are kept.
    """

    def sub(m: re.Match[str]) -> str:
        bang, label, target = m.groups()
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:, project:
            return m.group(0)
        path, _, fragment = target.partition("#")
        if not path:
            if fragment in anchors:
                return f"{bang}[{label}]({os.path.relpath(anchors[fragment], page.parent)})"
            return m.group(0)
        real = (origin.parent / path).resolve()
        if real in pages:
            new = os.path.relpath(pages[real], page.parent) + (f"#{fragment}" if fragment else "")
            return f"{bang}[{label}]({new})"
        if bang:
            return m.group(0)
        shown = os.path.relpath(real, REPO) if real.is_relative_to(REPO) else path
        return label if shown in label else f"{label} (`{shown}`)"

    out, fence = [], False
    for line in text.splitlines(keepends=True):
        if line.lstrip().startswith("```"):
            fence = not fence
        out.append(line if fence else _LINK.sub(sub, line))
    return "".join(out)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:  # unchanged pages keep their time: Sphinx rebuilds less
        path.write_text(text)
    return path


def _copy(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.exists() or dst.read_bytes() != src.read_bytes():
        shutil.copyfile(src, dst)
    return dst


def _rst_title(title: str, char: str = "=") -> str:
    return f"{title}\n{char * max(len(title), 3)}\n"


# -- methods ---------------------------------------------------------------------------------------------------------
def _flags(capabilities) -> str:
    c = capabilities
    on = [
        ("analytic KL", c.analytic_kl),
        ("local reparameterisation", c.lrt),
        ("structured", c.structured),
        ("learned rates", c.learns_rates),
    ]
    return ", ".join(name for name, flag in on if flag) or "none"


def _family(method_class: type) -> tuple[str, str]:
    """The family of a method: the module of its class, and that module's title (its docstring's first line)."""
    import importlib

    module = importlib.import_module(method_class.__module__)
    doc = (module.__doc__ or "").strip().splitlines()
    title = doc[0].rstrip(".:") if doc else module.__name__
    return module.__name__, title


def method_pages(out: Path, names: Iterable[str] | None = None) -> dict[str, Path]:
    """Write the method pages under ``out``: an index, one page per family and one per registered method.

    Parameters
    ----------
    out : Path
        A folder (created if needed); its pages are replaced.
    names : iterable of str, optional
        The methods; every registered one (``bayesdrop.methods.names()``) by default.

    Returns
    -------
    dict of str to Path
        Each method's page.
    """
    import bayesdrop as bd

    names = list(bd.methods.names() if names is None else names)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.rst"):
        old.unlink()
    families: dict[str, tuple[str, list[str]]] = {}
    pages: dict[str, Path] = {}
    taken: set[str] = set()
    rows = []
    for name in names:
        info = bd.methods.info(name)
        method = bd.methods.get(name)
        cls = type(method)
        module, title = _family(cls)
        families.setdefault(module, (title, []))[1].append(name)
        stem = slug(name)
        while stem in taken:
            stem += "-"
        taken.add(stem)
        pages[name] = _write(out / f"{stem}.rst", _method_page(name, info, method, module))
        fam = f":doc:`{module.rsplit('.', 1)[-1]} <family-{slug(module)}>`"
        rows.append(
            (
                f":doc:`{name} <{stem}>`",
                fam,
                info["role"],
                info["reference"] or "none given",
                _flags(info["capabilities"]),
            )
        )
    for module, (title, members) in families.items():
        _write(out / f"family-{slug(module)}.rst", _family_page(module, title, members, pages))
    _write(out / "index.rst", _methods_index(rows, families))
    return pages


def _method_page(name: str, info: dict, method, module: str) -> str:
    cls = type(method)
    c = info["capabilities"]
    usage = {
        "layer": f'net = bd.models.mlp(64, [300, 100], 10, method="{name}")',
        "input": f'net = bd.models.mlp(64, [300, 100], 10, method="bernoulli", input_method="{name}")',
        "pool": f'net = bd.models.lenet5(method=None, pool_method="{name}")',
        "recurrent": f'layer = bd.nn.LSTM(8, 64, method="{name}")',
    }[info["role"]]
    hyper = info["hyper"]
    lines = [
        f".. _method-{slug(name)}:",
        "",
        _rst_title(f"``{name}``"),
        f"Registered name ``{name!r}``; class :class:`~{cls.__module__}.{cls.__qualname__}`; family",
        f":doc:`{module} <family-{slug(module)}>`.",
        "",
        f"**Reference**: {info['reference'] or 'none given'}",
        "",
        ".. code-block:: python",
        "",
        "   import bayesdrop as bd",
        "",
        f"   {usage}",
        f"   method = bd.methods.get({name!r}{''.join(f', {k}={v!r}' for k, v in hyper.items())})",
        "",
        _rst_title("Capabilities", "-"),
        ".. list-table::",
        "   :widths: 30 70",
        "",
    ]
    fields = [
        ("role", f"``{info['role']}``"),
        ("analytic KL", info["analytic_kl"]),
        ("local reparameterisation", info["lrt"]),
        ("structured (prunes units)", info["structured"]),
        ("learns its rates", info["learns_rates"]),
        ("sites", ", ".join(f"``{s}``" for s in sorted(c.sites))),
        ("test-time rules", ", ".join(f"``{r}``" for r in sorted(c.rules))),
        ("training rule", f"``{c.train_rule}``"),
        ("noise roles", ", ".join(f"``{r}``" for r in sorted(c.noise_roles)) or "none"),
        ("stochastic at these settings", info["stochastic"]),
        ("pruning rule", f"``{method.pruning_rule()}``" if method.pruning_rule() else "none (it never prunes)"),
        ("KL warm-up (fraction of the epochs)", f"{method.fit_defaults.kl_warmup:g}"),
        (
            "learning-rate multipliers",
            ", ".join(f"``{k}``: {v:g}" for k, v in method.fit_defaults.lr_scale.items()) or "none",
        ),
    ]
    for key, value in fields:
        shown = ("yes" if value else "no") if isinstance(value, bool) else value
        lines += [f"   * - {key}", f"     - {shown}"]
    lines += ["", _rst_title("Hyper-parameters (the preset of this name)", "-")]
    if hyper:
        lines += [".. list-table::", "   :header-rows: 1", "", "   * - name", "     - default"]
        for k, v in hyper.items():
            lines += [f"   * - ``{k}``", f"     - ``{v!r}``"]
    else:
        lines.append("None.")
    lines += [
        "",
        _rst_title("Model and guide", "-"),
        f"The family's model and guide are written out on :doc:`its page <family-{slug(module)}>`; the class:",
        "",
        f".. autoclass:: {cls.__module__}.{cls.__qualname__}",
        "   :no-index:",
        "",
    ]
    return "\n".join(lines)


def _family_page(module: str, title: str, members: list[str], pages: dict[str, Path]) -> str:
    lines = [
        f".. _family-{slug(module)}:",
        "",
        _rst_title(title),
        f"Module :mod:`{module}`; registered methods: "
        + ", ".join(f":doc:`{n} <{pages[n].stem}>`" for n in members)
        + ".",
        "",
        ".. toctree::",
        "   :hidden:",
        "",
        *(f"   {pages[n].stem}" for n in members),
        "",
        ".. automodule:: " + module,
        "   :no-index:",
        "",
    ]
    return "\n".join(lines)


def _methods_index(rows: list[tuple[str, ...]], families: dict[str, tuple[str, list[str]]]) -> str:
    lines = [
        _rst_title("Methods"),
        f"The {len(rows)} methods registered in ``bayesdrop.methods`` (``bayesdrop methods`` prints the same registry),",
        "in registration order.  Each method has a page with its capabilities and hyper-parameters; each family (the",
        "module that defines it) a page with its model and guide written out.  These pages are generated from the",
        "registry when the site is built: a newly registered method appears here by itself.",
        "",
        ".. list-table::",
        "   :header-rows: 1",
        "",
        "   * - method",
        "     - family",
        "     - role",
        "     - reference",
        "     - capabilities",
    ]
    for row in rows:
        lines.append(f"   * - {row[0]}")
        lines += [f"     - {cell}" for cell in row[1:]]
    lines += ["", ".. toctree::", "   :maxdepth: 1", "   :caption: Families", ""]
    lines += [f"   family-{slug(module)}" for module in families]
    lines += ["", ".. toctree::", "   :maxdepth: 1", "   :caption: Overview", "", "   ../methods_overview", ""]
    return "\n".join(lines)


# -- tutorials -------------------------------------------------------------------------------------------------------
_FIGURE = re.compile(r"""["'](\d\d_[\w\-]+\.png)["']""")


def tutorial_pages(out: Path, tutorials: Path = REPO / "tutorials") -> dict[Path, Path]:
    """Write each tutorial script as a Markdown page under ``out``, its figures copied to ``out/output``.

    The scripts are read with jupytext, not run: a code cell is shown as code, the figures it saves (``NN_*.png``
    in ``tutorials/output/``) after it, and the log the full-size run recorded (``NN_log.txt``) at the end.

    Returns
    -------
    dict of Path to Path
        Each script, and each figure, to its file in the site.
    """
    import jupytext

    made: dict[Path, Path] = {}
    for script in sorted(tutorials.glob("[0-9][0-9]_*.py")):
        number = script.name[:2]
        nb = jupytext.read(script)
        page = out / f"{script.stem}.md"
        parts: list[str] = []
        text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        shown = set(re.findall(r"\]\(output/([^)\s]+)\)", text))  # figures the text shows itself
        for name in shown:
            fig = tutorials / "output" / name
            if fig.exists():
                made[fig.resolve()] = _copy(fig, out / "output" / name)
        for cell in nb.cells:
            source = cell.source.strip("\n")
            if not source:
                continue
            if cell.cell_type == "markdown":
                parts.append(source)
                continue
            parts.append(f"```python\n{source}\n```")
            for name in _FIGURE.findall(source):
                fig = tutorials / "output" / name
                if fig.exists() and name not in shown:
                    shown.add(name)
                    made[fig.resolve()] = _copy(fig, out / "output" / name)
                    parts.append(f"![{name}](output/{name})")
        log = tutorials / "output" / f"{number}_log.txt"
        if log.exists():
            parts.append(f"## The recorded run\n\n`tutorials/output/{log.name}`, from the full-size run:")
            parts.append("```text\n" + log.read_text().rstrip() + "\n```")
        title = next((p for p in parts if p.startswith("# ")), f"# Tutorial {number}").splitlines()[0][2:]
        note = (
            f"*Rendered from `tutorials/{script.name}` without running it; run it with "
            f"`python tutorials/{script.name}` (`BAYESDROP_QUICK=1` for a run of seconds).*"
        )
        body = "\n\n".join(parts) + "\n"
        if body.startswith("# "):  # the note goes under the title
            head, _, rest = body.partition("\n")
            body = f"{head}\n\n{note}\n{rest}"
        else:
            body = f"# {title}\n\n{note}\n\n{body}"
        made[script.resolve()] = _write(page, body)
    return made


# -- benchmark records -----------------------------------------------------------------------------------------------
def benchmark_pages(out: Path, results: Path = REPO / "benchmarks" / "results") -> dict[Path, Path]:
    """Where ``benchmarks/results/*.md`` and their figures go under ``out`` (:func:`generate` copies them).

    Returns
    -------
    dict of Path to Path
        Each record and figure to its copy (the records' links are rewritten as they are copied, once every page
        is known).
    """
    made: dict[Path, Path] = {}
    for src in sorted(results.iterdir()):
        if src.suffix in (".md", ".png", ".svg"):
            made[src.resolve()] = out / src.name
    return made


# -- the README ------------------------------------------------------------------------------------------------------
def readme_sections(text: str) -> dict[str, str]:
    """The README's ``##`` sections by title (fenced code is not searched for headings)."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    fence = False
    for line in text.splitlines(keepends=True):
        if line.lstrip().startswith("```"):
            fence = not fence
        if not fence and line.startswith("## "):
            current = sections.setdefault(line[3:].strip(), [])
        if current is not None:
            current.append(line)
    return {k: "".join(v) for k, v in sections.items()}


# -- the API reference ----------------------------------------------------------------------------------------------
API_LEFT_OUT = ("bayesdrop.experiments", "bayesdrop.cli")  # the benchmarks' drivers and the command line


def api_page(out: Path) -> Path:
    """Write the API reference's root page, ``out/api.rst``: the top-level names of ``bayesdrop.__all__`` and every
    public module of the package but :data:`API_LEFT_OUT`, which autosummary documents (``_templates/``)."""
    import importlib
    import inspect
    import pkgutil

    import bayesdrop as bd

    modules = sorted(
        f"bayesdrop.{m.name}"
        for m in pkgutil.iter_modules(bd.__path__)
        if not m.name.startswith("_") and f"bayesdrop.{m.name}" not in API_LEFT_OUT
    )
    names = [n for n in bd.__all__ if not inspect.ismodule(getattr(bd, n))]
    stubs = out / "api"
    shutil.rmtree(stubs, ignore_errors=True)
    stubs.mkdir(parents=True)
    for m in pkgutil.walk_packages(bd.__path__, "bayesdrop."):
        package, _, leaf = m.name.rpartition(".")
        if m.name.startswith(API_LEFT_OUT) or leaf.startswith("_"):
            continue
        shadow = getattr(importlib.import_module(package), leaf, None)
        if shadow is not None and not inspect.ismodule(shadow):
            # a package re-exports a function of its module's name (infer.predict): autosummary would document the
            # function under the module's name, so the module's page is written here, and kept
            # (autosummary_generate_overwrite = False)
            template = (DOCS / "_templates" / "autosummary" / "module.rst").read_text()
            page = re.sub(r"\{%.*?%\}\n?", "", template.split("{% if modules %}")[0])
            page = page.replace("{{ fullname | escape | underline }}", _rst_title(m.name).rstrip("\n"))
            _write(stubs / f"{m.name}.rst", page.replace("{{ fullname }}", m.name).rstrip("\n") + "\n")
    lines = [
        _rst_title("API reference"),
        "Generated from the docstrings.  Each object is documented in the module that defines it; the names that",
        "``import bayesdrop as bd`` gives at the top level (``bd.fit``, ``bd.Classifier``, ...) and the packages'",
        "re-exports (``bd.nn.Linear``, ``bd.methods.Method``, ...) link there.  "
        + " and ".join(f"``{m}``" for m in API_LEFT_OUT),
        "(the drivers of the scripts in ``benchmarks/`` and the ``bayesdrop`` command, see ``bayesdrop --help``) are",
        "not part of the library's API and are left out.",
        "",
        ".. automodule:: bayesdrop",
        "",
        ".. currentmodule:: bayesdrop",
        "",
        _rst_title("Top-level names", "-"),
        ".. autosummary::",
        "",
        *(f"   {n}" for n in names),
        "",
        _rst_title("Modules", "-"),
        ".. autosummary::",
        "   :toctree: api",
        "   :recursive:",
        "",
        *(f"   {m.split('.', 1)[1]}" for m in modules),
        "",
    ]
    return _write(out / "api.rst", "\n".join(lines))


# -- all of it -------------------------------------------------------------------------------------------------------
def generate(gen: Path = GEN) -> dict[Path, Path]:
    """Generate every page into ``gen``.

    Returns
    -------
    dict of Path to Path
        The repository's files to the site's files that stand for them (the hand-written pages of ``docs/``
        included), for :func:`rewrite_links`.
    """
    gen.mkdir(parents=True, exist_ok=True)
    method_pages(gen / "methods")
    api_page(gen)
    pages: dict[Path, Path] = {}
    tutorials = tutorial_pages(gen / "tutorials")
    bench = benchmark_pages(gen / "benchmarks")
    pages.update(tutorials)
    pages.update(bench)
    for md in DOCS.glob("*.md"):
        pages[md.resolve()] = md.resolve()
    for example in (DOCS / "examples").glob("*.py"):
        pages[example.resolve()] = DOCS / "guide" / "adding.md"
    readme = REPO / "README.md"
    pages[readme.resolve()] = gen / "quickstart.md"
    changelog = REPO / "CHANGELOG.md"
    if changelog.exists():
        pages[changelog.resolve()] = gen / "changelog.md"
    for src, dst in bench.items():  # the records, their links rewritten now that every page is known
        if src.suffix == ".md":
            _write(dst, rewrite_links(src.read_text(), src, dst, pages, {}))
        elif src.is_file():
            _copy(src, dst)
    if changelog.exists():
        _write(gen / "changelog.md", rewrite_links(changelog.read_text(), changelog, gen / "changelog.md", pages, {}))
    sections = readme_sections(readme.read_text())
    anchors: dict[str, Path] = {}
    for name, titles in README_PAGES.items():
        for i, title in enumerate(titles):
            anchors[heading_anchor(title)] = gen / (name if i == 0 else f"{name}#{heading_anchor(title)}")
    for name, titles in README_PAGES.items():
        page = gen / name
        body = "".join(sections[t] for t in titles if t in sections)
        body = "#" + body[2:] if body.startswith("## ") else f"# {titles[0]}\n\n" + body
        own = {heading_anchor(t) for t in titles[1:]}  # links within the page keep their fragment
        body = rewrite_links(body, readme, page, pages, {k: v for k, v in anchors.items() if k not in own})
        note = "\n*From the project's README.*\n"
        head, _, rest = body.partition("\n")
        tail = ""
        if name == "tutorials/index.md":
            tail = _toctree(p.stem for p in sorted(set(tutorials.values())) if p.suffix == ".md")
        elif name == "benchmarks/index.md":
            tail = "\n## Every record\n\n" + _toctree(p.stem for p in sorted(set(bench.values())) if p.suffix == ".md")
        _write(page, f"{head}\n{note}{rest}{tail}")
    for folder in ("tutorials", "benchmarks"):  # a record or tutorial removed from the repository leaves the site
        keep = {gen / name for name in README_PAGES} | {Path(p) for p in pages.values()}
        for old in (gen / folder).rglob("*"):
            if old.is_file() and old not in keep:
                old.unlink()
    return pages


def _toctree(stems: Iterable[str]) -> str:
    return "\n".join(["", "```{toctree}", ":maxdepth: 1", "", *stems, "```", ""])


def source_read_hook(pages: dict[Path, Path], srcdir: Path) -> Callable:
    """A handler of Sphinx's ``source-read`` event that rewrites the links of the hand-written Markdown pages."""

    def hook(app, docname: str, source: list[str]) -> None:
        path = (srcdir / docname).with_suffix(".md")
        if path.exists() and not path.is_relative_to(srcdir / GEN.name):
            source[0] = rewrite_links(source[0], path, path, pages, {})

    return hook


if __name__ == "__main__":  # python docs/gen_pages.py: generate and list the pages
    made = generate()
    print(json.dumps(sorted(str(p.relative_to(REPO)) for p in set(made.values())), indent=1))
