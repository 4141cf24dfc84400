"""The lint tools: the import-circle check and the engine's line budget (both run by ``nox -s lint``)."""

from __future__ import annotations

from pathlib import Path

from yolozoo.tools import import_graph, size_budget

ROOT = Path(__file__).resolve().parents[1] / "yolozoo"


def test_size_budget_counts_physical_lines_and_fails_over_budget(tmp_path, capsys):
    for name, text in (("sweep", "x = 1\n\n# c\n"), ("search", ""), ("analysis", "x = 1\n\n")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "a.py").write_text(text)
    (tmp_path / "sweep" / "b.py").write_text('"""doc"""\n\n\ny = 2')  # no final newline: still 4 lines
    (tmp_path / "sweep" / "notes.txt").write_text("not python\n" * 50)
    assert size_budget.count_lines(tmp_path) == {"sweep": 3 + 4, "search": 0, "analysis": 2}
    # the real tree: the printed total is the sum of wc -l over the three packages
    total = sum(size_budget.count_lines(ROOT).values())
    assert size_budget.main(["--budget", str(total)]) == 0
    assert f"total {total} of {total} lines" in capsys.readouterr().out
    assert size_budget.main(["--budget", str(total - 1)]) == 1
    assert "over budget by 1 lines" in capsys.readouterr().err


def test_import_graph_finds_a_circle(tmp_path):
    pkg = tmp_path / "yolozoo"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from . import b\n")
    (pkg / "b.py").write_text("from .a import f\n")
    (pkg / "c.py").write_text("import yolozoo.a\n")
    # a function-level import counts: a circle hidden in a function is still two modules needing each other
    assert import_graph.circles(import_graph.graph(pkg)) == [["yolozoo.a", "yolozoo.b"]]
    assert import_graph.circles(import_graph.graph(pkg, top_level=True)) == []
    assert import_graph.graph(pkg)["yolozoo.c"] == {"yolozoo.a"}
