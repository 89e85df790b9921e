"""experiments/toy-model/confusion.py: asked against read, counted from eval records."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "toy-model" / "confusion.py"
spec = importlib.util.spec_from_file_location("confusion", SCRIPT)
confusion = importlib.util.module_from_spec(spec)
spec.loader.exec_module(confusion)


def _record(asked, read, subset="t2v"):
    return dict(subset=subset, spec=dict(direction=asked, colour="red", shape="circle"), detected_direction=read,
                detected_colour="red", detected_shape="circle")


RECORDS = [_record("left", "left"), _record("left", "left"), _record("right", "left"), _record("right", "right"),
           _record("up", None), _record("still", "still"), _record("down", "down", subset="i2v")]


def test_counts_asked_against_read_per_subset():
    table = confusion.confusion(RECORDS, "t2v")
    assert list(table) == ["left", "right", "up", "still"]  # table order, asked values only
    assert table["left"] == {"left": 2} and table["right"] == {"left": 1, "right": 1}
    assert table["up"] == {"none": 1}  # nothing found is its own column
    assert confusion.confusion(RECORDS, "i2v") == {"down": {"down": 1}}


def test_markdown_rows_columns_and_totals(tmp_path):
    text = confusion.markdown(confusion.confusion(RECORDS, "t2v"), "t2v", "direction")
    lines = text.splitlines()
    assert lines[0] == "| asked \\ read (t2v) | left | right | up | down | still | none |"
    assert "| right (2) | 1 | 1 | 0 | 0 | 0 | 0 |" in lines
    assert lines[-1] == "| read in all (6) | 3 | 1 | 0 | 0 | 1 | 1 |"
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"records": RECORDS}))
    out = tmp_path / "table.md"
    printed = confusion.main([str(path), "--subset", "t2v", "i2v", "--out", str(out)])
    assert out.read_text() == printed + "\n" and "| down (1) | 0 | 0 | 0 | 1 | 0 |" in printed


def test_clear_errors():
    with pytest.raises(ValueError, match="attribute must be one of"):
        confusion.confusion(RECORDS, "t2v", "size")
    with pytest.raises(ValueError, match="no 'start_end' records"):
        confusion.confusion(RECORDS, "start_end")
    old = [{k: v for k, v in r.items() if k != "detected_direction"} for r in RECORDS]
    with pytest.raises(ValueError, match="rerun `cogfun eval`"):
        confusion.confusion(old, "t2v")


def test_drift_means_per_asked_direction_and_across_the_asked_axis(tmp_path):
    def moved(asked, dx, dy):
        return dict(_record(asked, None), displacement=None if dx is None else [dx, dy])

    records = [moved("left", -0.5, 0.1), moved("left", -0.3, 0.1), moved("up", 0.2, -0.6), moved("up", 0.0, -0.4),
               moved("still", 0.1, 0.0), moved("right", None, None)]
    table = confusion.drift(records, "t2v")
    assert table["left"]["n"] == 2 and table["left"]["dx"] == pytest.approx((-0.4, 0.1))
    assert table["up"]["dy"] == pytest.approx((-0.5, 0.1))
    # Across the asked axis: dx of up, up, still (0.2, 0.0, 0.1) and dy of left, left, still (0.1, 0.1, 0.0).
    assert table["across"]["dx"][0] == pytest.approx(0.1) and table["across"]["dy"][0] == pytest.approx(0.2 / 3)
    assert table["across"]["n"] == 5 and table["no object"]["n"] == 1 and "right" not in table
    text = confusion.drift_markdown(table, "t2v")
    assert "| left | 2 | -0.400 +- 0.100 | +0.100 +- 0.000 |" in text
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"records": records}))
    assert "across the asked axis" in confusion.main([str(path), "--subset", "t2v", "--drift"])
    with pytest.raises(ValueError, match="carry no displacement"):
        confusion.drift(RECORDS, "t2v")


def test_centre_pull_fits_the_across_axis_motion_against_the_start_offset(tmp_path):
    from cogfun.data.toy import ToyClipSpec, shape_track

    height, width, frames = 64, 96, 17
    records = []
    for i, asked in enumerate(["up", "down", "still", "left", "right"] * 3):
        spec = ToyClipSpec("shape", asked, "grey", "circle", "red", size=0.3, speed=0.8)
        seed = 1000 + i
        x, y = shape_track(spec, height, width, frames, seed)[0][0]
        off_x, off_y = (x - width / 2) / height, (y - height / 2) / height
        # A model that drifts right by 0.05 and takes the object half way back to the centre across the asked axis.
        dx = 0.05 - 0.5 * off_x if asked in ("up", "down", "still") else 0.7
        dy = -0.5 * off_y if asked in ("left", "right", "still") else 0.4
        records.append(dict(subset="i2v", spec=spec.to_dict(), render_seed=seed, height=height, width=width,
                            num_frames=frames, displacement=[dx, dy], detected_direction=asked))
    records.append(dict(records[0], displacement=None))  # nothing found: skipped
    fits = confusion.centre_pull(records, "i2v")
    assert fits["dx"]["n"] == 9 and fits["dy"]["n"] == 9
    assert fits["dx"]["intercept"][0] == pytest.approx(0.05) and fits["dx"]["slope"][0] == pytest.approx(-0.5)
    assert fits["dy"]["intercept"][0] == pytest.approx(0.0, abs=1e-9) and fits["dy"]["slope"][0] == pytest.approx(-0.5)
    assert fits["dx"]["slope"][1] == pytest.approx(0.0, abs=1e-9)  # an exact line: no error
    # The plain mean is drift()'s "across" number, which the start positions move.
    across = [r["displacement"][0] for r in records[:-1] if r["spec"]["direction"] in ("up", "down", "still")]
    assert fits["dx"]["mean"][0] == pytest.approx(sum(across) / len(across))
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"records": records}))
    text = confusion.main([str(path), "--subset", "i2v", "--centre-pull"])
    assert "| +0.050 +- 0.000 | -0.50 +- 0.00 |" in text
    with pytest.raises(ValueError, match="needs a given first frame"):
        confusion.centre_pull(records, "t2v")
    with pytest.raises(ValueError, match="render_seed"):
        confusion.centre_pull([{k: v for k, v in r.items() if k != "render_seed"} for r in records], "i2v")
