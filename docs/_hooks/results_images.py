"""MkDocs hook: serve the benchmarks' plots from where the benchmarks write them.

`benchmarks/*.py` write their PNGs to `benchmarks/results/`. The results pages
show them as `images/<name>.png` (under `results/`), and this hook adds each
PNG to the site at that address, so the docs never hold a stale copy.
"""

import pathlib

from mkdocs.structure.files import File

_RESULTS = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def on_files(files, config):
    for png in sorted(_RESULTS.glob("*.png")):
        files.append(File.generated(config, f"results/images/{png.name}",
                                    abs_src_path=str(png)))
    return files
