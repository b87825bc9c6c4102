"""Start to first build request for `dockpool run`, a process per run, as users start it.

The CLI starts the fork server while it loads the project; the figure is the run's own
report: pipeline started to the first build request. Issue #11's target: under 0.3 s
with builders 4. Run it with
`.venv/bin/python -m gui.devservices run -- .venv/bin/python tests/bench/cli_start.py --registry {registry}`;
`--cli dist/Dockpool/dockpool` measures the frozen bundle (`make package`), and
DOCKPOOL_START_METHOD=spawn Windows' start method. Each run also prints the whole
command's wall time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.helpers import bench_folder, write_image, write_project  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", required=True)
    parser.add_argument("-n", "--images", type=int, default=4)
    parser.add_argument("-b", "--builders", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cli", type=Path, default=Path(sys.executable).with_name("dockpool"),
                        help="the dockpool executable (default: this environment's)")
    args = parser.parse_args()
    cli = args.cli.resolve()
    root = bench_folder("dockpool-cli-start-")
    for attempt in range(args.runs):
        folder = root / f"run{attempt}"
        names = [f"img{index}" for index in range(args.images)]
        for name in names:
            write_image(folder, name)  # fresh content: nothing comes from the engine's cache
        project = write_project(folder, [{"name": n, "context": n} for n in names], registry=args.registry,
                                builders=args.builders)
        report = folder / "report.json"
        began = time.time()
        subprocess.run([str(cli), "run", str(project), "--report", str(report)], check=True, capture_output=True)
        took = time.time() - began
        data = json.loads(report.read_text())
        first = min(i["build"]["start"] for i in data["images"] if (i.get("build") or {}).get("start"))
        print(f"run {attempt + 1}: {args.images} images, builders {args.builders}: first build request "
              f"{first - data['started']:.2f} s after the pipeline started, {first - began:.2f} s after the "
              f"command; the command took {took:.1f} s", flush=True)


if __name__ == "__main__":
    main()
