"""The documentation site's generator (``docs/gen_pages.py``, run by ``docs/conf.py`` when ``make docs`` builds).

The generator is tested directly and fast: a page for every registered method and family (a newly registered
method included, with no edit of the docs), the tutorials with every figure of ``tutorials/output/``, the
benchmark records, and the rewriting of the repository's links into the site's.  The whole Sphinx build, with
warnings as errors, is the test at the end (about 40 s; ``make test`` installs Sphinx with the test extra, so CI
builds the site).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import bayesdrop as bd

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def gen():
    sys.path.insert(0, str(DOCS))
    import gen_pages

    yield gen_pages
    sys.path.remove(str(DOCS))


def test_every_registered_method_has_a_page(gen, tmp_path):
    pages = gen.method_pages(tmp_path)
    assert list(pages) == bd.methods.names()
    assert len({p.name for p in pages.values()}) == len(pages)  # one file each, whatever the name's characters
    index = (tmp_path / "index.rst").read_text()
    for name, page in pages.items():
        text = page.read_text()
        cls = type(bd.methods.get(name))
        assert f"``{name}``" in text.splitlines()[2]  # the title
        assert f".. autoclass:: {cls.__module__}.{cls.__qualname__}" in text
        assert bd.methods.info(name)["reference"] in text
        assert f"<{page.stem}>" in index  # listed, linked
        family = tmp_path / f"family-{gen.slug(cls.__module__)}.rst"
        assert f".. automodule:: {cls.__module__}" in family.read_text()  # the model and guide written out
        assert f"   {page.stem}\n" in family.read_text()  # in the family's toctree


def test_a_newly_registered_method_gets_its_page_without_editing_the_docs(gen, tmp_path):
    sys.path.insert(0, str(DOCS / "examples"))
    try:
        import uniform_noise

        uniform_noise.register()
        pages = gen.method_pages(tmp_path)
    finally:
        bd.methods.unregister("uniform-noise")
        sys.path.remove(str(DOCS / "examples"))
    assert "uniform-noise" in pages
    assert ".. autoclass:: uniform_noise.UniformNoise" in pages["uniform-noise"].read_text()
    assert (tmp_path / "family-uniform-noise.rst").exists()
    assert "uniform-noise" in (tmp_path / "index.rst").read_text()


def test_slugs_are_file_names():
    sys.path.insert(0, str(DOCS))
    try:
        from gen_pages import slug
    finally:
        sys.path.remove(str(DOCS))
    assert slug("dropout++(0.5)") == "dropout-pp-0-5"
    assert slug("sparse-vd") == "sparse-vd"


@pytest.mark.skipif(importlib.util.find_spec("jupytext") is None, reason="jupytext reads the tutorials")
def test_every_tutorial_is_a_page_with_every_figure(gen, tmp_path):
    made = gen.tutorial_pages(tmp_path)
    scripts = sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py"))
    pages = [made[s.resolve()] for s in scripts]
    assert [p.stem for p in pages] == [s.stem for s in scripts]
    text = "\n".join(p.read_text() for p in pages)
    for fig in (ROOT / "tutorials" / "output").glob("*.png"):  # every recorded figure is shown, once
        assert text.count(f"](output/{fig.name})") == 1, fig.name
        assert (tmp_path / "output" / fig.name).exists()
    for page in pages:
        assert page.read_text().startswith("# ")  # a title


def test_links_point_at_the_site(gen, tmp_path):
    origin = ROOT / "docs" / "defaults.md"
    page = DOCS / "defaults.md"
    record = ROOT / "benchmarks" / "results" / "defaults.md"
    pages = {record: DOCS / "_gen" / "benchmarks" / "defaults.md"}
    text = (
        "[the record](../benchmarks/results/defaults.md#digits), [code](../bayesdrop/fit.py), "
        "[web](https://pyro.ai), [here](#the-defaults)\n```\n[kept](../benchmarks/results/defaults.md)\n```\n"
    )
    out = gen.rewrite_links(text, origin, page, pages, {})
    assert "[the record](_gen/benchmarks/defaults.md#digits)" in out
    assert "code (`bayesdrop/fit.py`)" in out  # a file that is not a page: its path, unlinked
    assert "[web](https://pyro.ai)" in out and "[here](#the-defaults)" in out
    assert "[kept](../benchmarks/results/defaults.md)" in out  # code is left alone


def test_the_readme_sections_the_site_shows_exist(gen):
    sections = gen.readme_sections((ROOT / "README.md").read_text())
    for titles in gen.README_PAGES.values():
        for title in titles:
            assert title in sections, title


@pytest.mark.skipif(importlib.util.find_spec("sphinx") is None, reason="the test and docs extras install Sphinx")
def test_the_site_builds_without_warnings(gen, tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert out.returncode == 0, out.stderr[-5000:]
    assert "WARNING" not in out.stderr and "ERROR" not in out.stderr, out.stderr[-5000:]
    for name in bd.methods.names():  # the registry's pages are in the site
        assert (tmp_path / "_gen" / "methods" / f"{gen.slug(name)}.html").exists(), name
    for page in ("_gen/api", "_gen/quickstart", "_gen/tutorials/index", "_gen/benchmarks/index", "guide/adding"):
        assert (tmp_path / f"{page}.html").exists(), page
