"""Every Python example in the README runs (docs cannot drift)."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_python_examples_run():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "the README shows at least one library call"
    for code in blocks:
        ns: dict = {}
        exec(compile(code, "README.md", "exec"), ns)  # noqa: S102 - our own docs


def test_readme_names_the_commands_and_files_that_exist():
    text = (ROOT / "README.md").read_text()
    for path in re.findall(r"`(params/[\w.-]+\.yaml)`", text):
        assert (ROOT / path).is_file(), path
    makefile = (ROOT / "Makefile").read_text()
    for target in re.findall(r"make (\w+)", text):
        assert re.search(rf"^{target}:", makefile, re.M), f"make {target}"
