"""Ships the top-level weights_manifest.json inside the ptocr package of a built wheel.

The repository edits one manifest, at the top level (tools and docs point there); a wheel
needs it inside the package, where ``ptocr.manifest.manifest_path()`` looks first. Copying it
at build time keeps a single committed copy. Everything else is in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

MANIFEST = "weights_manifest.json"


class BuildPyWithManifest(build_py):
    def run(self):
        super().run()
        # An editable install reads the top-level file in place: nothing to copy.
        if not getattr(self, "editable_mode", False):
            src = Path(__file__).resolve().parent / MANIFEST
            dst = Path(self.build_lib) / "ptocr" / MANIFEST
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)

    def get_outputs(self, include_bytecode=True):
        outputs = super().get_outputs(include_bytecode)
        if not getattr(self, "editable_mode", False):
            outputs.append(str(Path(self.build_lib) / "ptocr" / MANIFEST))
        return outputs


setup(cmdclass={"build_py": BuildPyWithManifest})
