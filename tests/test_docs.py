"""README is assembled from docs/readme/ and its quick start runs."""

import importlib.util
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_readme_is_assembled_from_sections():
    result = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "build_readme.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout
    text = (ROOT / "README.md").read_text()
    first_commands = [line.split("#")[0].strip() for line in text.splitlines() if line.startswith("make ")][:2]
    assert first_commands == ["make demo", "make test"]


def test_quickstart_example_distills(tmp_path):
    spec = importlib.util.spec_from_file_location("quickstart", ROOT / "examples" / "quickstart.py")
    quickstart = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quickstart)
    teacher_acc, student_acc = quickstart.main(["--epochs", "1", "--output", str(tmp_path)])
    assert teacher_acc > 0.85
    assert student_acc > 0.6  # ten classes: chance is 0.1
    assert (tmp_path / "student.keras").exists()
