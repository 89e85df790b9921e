"""The GPU benchmark script's CPU dry run (benchmarks/bench_gpu.py): every row runs and the table is written."""

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load():
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("bench_gpu", BENCH / "bench_gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dry_run_measures_every_case_and_writes_the_section(tmp_path, capsys):
    bench = _load()
    results = tmp_path / "RESULTS.md"
    results.write_text("# cogfun benchmarks\n\n## Another section\n\nkept\n")
    assert bench.main(["--dry-run", "--write", "--results", str(results)]) == 0
    text = results.read_text()
    assert "## Another section\n\nkept" in text and bench.SECTION in text
    assert "CPU dry run" in text
    rows = [line.split("|")[1:-1] for line in text.splitlines() if line.startswith("| 2b") or line.startswith("| 5b")]
    cases = {(r[0].strip(), r[1].strip()): [c.strip() for c in r[2:]] for r in rows}
    for model in ("2b", "5b"):  # 2B: sincos; 5B: RoPE, both at tiny widths
        for case in ("none", "vae-tiling", "first-block-cache", "pab", "faster-cache", "compile"):
            seconds, per_step, *_ , note = cases[(model, case)]
            assert float(seconds) >= 0 and float(per_step) > 0, (model, case, note)
            assert "failed" not in note
        for case in ("group-offload", "model-offload", "sequential-offload"):
            assert cases[(model, case)][-1] == "needs CUDA"
        assert cases[(model, "vae-tiling")][4] in ("identical", "100.0")  # tiling does not change a tiny decode


def test_without_cuda_a_real_run_is_refused_naming_the_dry_run():
    bench = _load()
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the real run would start")
    with pytest.raises(SystemExit, match="--dry-run"):
        bench.main([])
