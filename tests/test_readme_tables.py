"""The README's measured tables are exactly what docs/readme_tables.py renders from the committed records."""
import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("readme_tables", REPO / "docs" / "readme_tables.py")
readme_tables = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(readme_tables)


def test_every_marked_table_is_the_rendering_of_its_record():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    names = [m.group("name") for m in readme_tables.MARKER.finditer(text)]
    assert sorted(names) == sorted(readme_tables.TABLES), "every table is in the README once, and only those"
    assert readme_tables.fill(text) == text, "run `python docs/readme_tables.py --write` after changing a record"


def test_the_renderer_would_notice_a_typed_number():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    m = next(readme_tables.MARKER.finditer(text))
    tampered = text[:m.start("body")] + m.group("body").replace("%", "%%", 1) + text[m.end("body"):]
    assert readme_tables.fill(tampered) != tampered
