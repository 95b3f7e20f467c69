"""Build hook: copy the notebook templates and the demo params into the package.

``notebooks/`` and ``params/demo.yaml`` stay where users of a checkout expect them; the wheel
carries copies under ``capplan/data/`` so an installed (not editable) capplan finds them
(:func:`capplan.runner.params.notebooks_dir`, ``capplan init``).  Everything else is in
pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
TEMPLATES = {"notebooks": ("notebooks", "*.ipynb"), "params": ("params", "demo.yaml")}


class BuildWithTemplates(build_py):
    def run(self):
        super().run()
        if self.editable_mode:  # an editable install reads the checkout itself
            return
        for sub, (folder, pattern) in TEMPLATES.items():
            dest = Path(self.build_lib) / "capplan" / "data" / sub
            dest.mkdir(parents=True, exist_ok=True)
            for src in sorted((ROOT / folder).glob(pattern)):
                shutil.copyfile(src, dest / src.name)


setup(cmdclass={"build_py": BuildWithTemplates})
