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
