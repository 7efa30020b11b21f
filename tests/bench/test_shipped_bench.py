"""The shipped-bytes bench's bookkeeping on a small fake tree, and its before/after sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import coldstart_bench, shipped_bench
from bench.shipped_bench import Size, code_roots, measure, requirement_files


def fake_tree(root: Path, *, scoring_layer: bool) -> Path:
    """functions/{score,send}, programs/, templates/, layers/kizuna and requirements."""
    files = {
        "functions/score/handler.py": "a\nb\n",
        "functions/send/handler.py": "a\n",
        "functions/send/__pycache__/handler.cpython-311.pyc": "never shipped",
        "programs/welcome.yaml": "id: welcome\n",
        "templates/welcome.email.j2": "Hello\nthere\n",
        "layers/kizuna/__init__.py": "x = 1\n",
        "layers/kizuna/big.bin": "",
        "layers/requirements.txt": "pydantic==2\n",
    }
    if scoring_layer:
        files["layers/requirements-scoring.txt"] = "numpy==2\n"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "layers/kizuna/big.bin").write_bytes(b"\xff\xfe\x00" * 10)  # not text: no lines
    return root


def test_code_of_a_function_is_its_folder_its_bundled_data_and_the_kizuna_layer(
    tmp_path: Path,
) -> None:
    # Given a tree where send bundles programs and templates, and score bundles nothing
    tree = fake_tree(tmp_path, scoring_layer=True)
    # When measuring each function's code
    send = measure(code_roots(tree, "send"))
    score = measure(code_roots(tree, "score"))
    # Then bytes and lines add up, caches and binary lines left out
    layer = Size(files=2, bytes=len("x = 1\n") + 30, lines=1)
    assert score == Size(1, 4, 2) + layer
    assert send == Size(3, len("a\n") + len("id: welcome\n") + len("Hello\nthere\n"), 4) + layer


def test_only_the_score_function_gets_the_scoring_requirements_where_they_exist(
    tmp_path: Path,
) -> None:
    after = fake_tree(tmp_path / "after", scoring_layer=True)
    before = fake_tree(tmp_path / "before", scoring_layer=False)
    assert [p.name for p in requirement_files(after, "score")] == [
        "requirements.txt",
        "requirements-scoring.txt",
    ]
    assert [p.name for p in requirement_files(after, "send")] == ["requirements.txt"]
    assert [p.name for p in requirement_files(before, "score")] == ["requirements.txt"]


def test_every_function_of_this_tree_has_a_factory_and_data_folders_that_exist() -> None:
    functions = shipped_bench.functions_of(shipped_bench.ROOT)
    assert set(functions) == set(coldstart_bench.FACTORIES)
    for function, folders in shipped_bench.EXTRAS.items():
        assert function in functions
        assert all((shipped_bench.ROOT / f).is_dir() for f in folders)


def test_a_missing_commit_skips_the_before_column_loudly(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert shipped_bench.exported_tree("0" * 40) is None
    assert "BEFORE SKIPPED" in capsys.readouterr().out


def test_the_wiring_module_is_found_by_file(tmp_path: Path) -> None:
    (tmp_path / "kizuna").mkdir()
    (tmp_path / "kizuna" / "wiring.py").write_text("")
    assert coldstart_bench.wiring_module(tmp_path) == "kizuna.wiring"
    assert coldstart_bench.wiring_module(shipped_bench.ROOT / "layers") == "kizuna.runtime.wiring"


def test_importtime_reads_the_top_level_line_only() -> None:
    stderr = (
        "import time: self [us] | cumulative | imported package\n"
        "import time:       100 |        150 |   handler\n"
        "import time:       200 |       2500 | handler\n"
    )
    assert coldstart_bench.importtime_of(stderr, "handler") == 2.5
