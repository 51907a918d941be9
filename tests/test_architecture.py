"""The layout docs/architecture.md describes, held against the code's imports."""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_imports_keep_the_contracts_in_pyproject() -> None:
    from importlinter.cli import lint_imports

    out = io.StringIO()
    with redirect_stdout(out):
        status = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True)
    assert status == 0, out.getvalue()[-4000:]
    assert "4 kept, 0 broken" in out.getvalue()


def test_the_architecture_page_names_every_module() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text()
    source = ROOT / "src" / "exosms"
    for path in sorted(source.rglob("*.py")):
        relative = path.relative_to(source)
        if "migrations" in relative.parts or path.name in ("__init__.py", "__main__.py"):
            continue
        name = ".".join(relative.with_suffix("").parts)
        assert f"`{name}`" in page, f"docs/architecture.md does not say what exosms.{name} is"


MAX_LINES = 400  # past this, split by concept (docs/architecture.md), or say why not


def test_a_module_past_400_lines_says_why_at_its_top() -> None:
    import ast

    source = ROOT / "src" / "exosms"
    long = []
    for path in sorted(source.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if "migrations" in path.parts or text.count("\n") <= MAX_LINES:
            continue
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if "Why one module" not in docstring:
            long.append(f"{path.relative_to(source)} ({text.count(chr(10))} lines)")
    assert not long, f"split these, or say 'Why one module' in their docstring: {long}"
