"""The leaderboard, built from real run folders made on the tiny model."""

import json
import re
import shutil
import struct

import pytest

from harness.cli import main
from harness.errors import HarnessError
from harness.leaderboard import build
from harness.pipeline import RunRequest, run
from harness.plugins import plugins
from harness.report import md_escape, pareto_front

SUITE = ('name = "{name}"\nseed = 0\n[generation]\nmax_new_tokens = {tokens}\nbatch_size = 4\n'
         '[[benchmarks]]\nname = "jbb-harmful"\nlimit = 4\n'
         '[[benchmarks]]\nname = "xstest-safe"\nlimit = 4\n')


@pytest.fixture(scope="module")
def runs(tiny_dir, data_dir, tmp_path_factory):
    """Four complete runs: two defenses under one setting, one with other judge settings, one with another suite."""
    root = tmp_path_factory.mktemp("lb")
    suite = root / "lb-suite.toml"
    suite.write_text(SUITE.format(name="lb", tokens=4))
    other_suite = root / "lb-suite-long.toml"
    other_suite.write_text(SUITE.format(name="lb", tokens=5))

    def make(name, **kw):
        kw.setdefault("suite", str(suite))
        return run(RunRequest(model=str(tiny_dir), data_dir=data_dir, out=root / "runs" / name, progress=False, **kw),
                   plugins())

    return {
        "none": make("none"),
        "reminder": make("reminder", defense="self-reminder"),
        "judge": make("judge", judge_config={"detect_incoherent": False}),
        "suite": make("suite", suite=str(other_suite)),
        "root": root,
    }


def _row(text: str, run_id: str, heading: str) -> list[str]:
    """The cells of ``run_id``'s row in the table under the heading that starts with ``heading``."""
    section = text.split(heading, 1)[1].split("\n### ", 1)[0]
    for line in section.splitlines():
        if f"[{run_id}](" in line:
            return [c.strip() for c in line.strip().strip("|").split("|")]
    raise AssertionError(f"no row for {run_id} under {heading}")


def test_numbers_come_from_metrics_json_and_rows_link_manifests(runs, tmp_path):
    out = tmp_path / "pages" / "lb.md"
    text = build([runs["none"], runs["reminder"]], out=out, figure=tmp_path / "pages" / "lb.png")
    assert out.read_text() == text
    assert text.count("## Setting ") == 1
    for key in ("none", "reminder"):
        folder = runs[key]
        metrics = json.loads((folder / "metrics.json").read_text())
        run_id = metrics["run_id"]
        link = re.search(rf"\[{run_id}\]\(([^)]+)\)", text).group(1)
        assert (out.parent / link).resolve() == (folder / "manifest.json").resolve()
        for bench, m in metrics["benchmarks"].items():
            rate = m["asr"] if bench == "jbb-harmful" else m["over_refusal"]
            cells = _row(text, run_id, f"### {bench} (")
            lo, hi = rate["ci95"]
            assert f"{rate['value']:.3f}" in cells and f"[{lo:.3f}, {hi:.3f}]" in cells
            assert f"{rate['k']} / {rate['n']}" in cells
            assert str(m["counts"]["refusal"]) == cells[7] and str(m["counts"]["incoherent"]) == cells[9]
        main_row = _row(text, run_id, "### Main table")
        assert f"{metrics['benchmarks']['jbb-harmful']['asr']['value']:.2f}" == main_row[3]
        safe = metrics["benchmarks"]["xstest-safe"]
        assert main_row[4] == (f"{safe['over_refusal']['value']:.2f} (r {safe['refusal_rate']['value']:.2f} / "
                               f"i {safe['incoherent_rate']['value']:.2f})")
        manifest = json.loads((folder / "manifest.json").read_text())
        assert main_row[-1] == f"{manifest['timings']['defense_s']:.1f}"
    # the page names what produced it
    assert "keyword version 1" in text and "max_new_tokens=4, greedy" in text and "suite lb" in text
    assert text.splitlines()[7].startswith("harness leaderboard ")  # the rebuild command, near the top


def test_different_judge_settings_or_suites_never_share_a_column(runs, tmp_path):
    text = build([runs["none"], runs["judge"], runs["suite"], runs["reminder"]], out=tmp_path / "lb.md")
    assert text.count("## Setting ") == 3 and "fall into 3 settings" in text
    ids = {k: json.loads((runs[k] / "metrics.json").read_text())["run_id"] for k in ("none", "reminder", "judge", "suite")}
    sections = text.split("## Setting ")[1:]

    def section_of(key):
        (found,) = [i for i, s in enumerate(sections) if f"[{ids[key]}](" in s.split("### Runs")[0]]
        return found

    assert section_of("none") == section_of("reminder")
    assert len({section_of("none"), section_of("judge"), section_of("suite")}) == 3
    assert "detect&#95;incoherent=false" in sections[section_of("judge")]
    assert "max_new_tokens=5" in sections[section_of("suite")]


def test_each_model_gets_its_own_section_and_pareto_front(runs, tmp_path):
    """Two models under one setting: two sections with the same columns, a front in each, two figure panels."""
    other = tmp_path / "tiny-other"
    shutil.copytree(runs["root"] / "runs" / "none", other)
    for name in ("manifest.json", "metrics.json"):
        doc = json.loads((other / name).read_text())
        doc["run_id"] = "0ther0000a"
        if name == "manifest.json":
            doc["identity"]["model"] = doc["model"]["spec"] = "tiny-other"
        (other / name).write_text(json.dumps(doc))
    figure = tmp_path / "two.png"
    text = build([runs["none"], runs["reminder"], other], out=tmp_path / "two.md", figure=figure)
    sections = text.split("## Setting ")[1:]
    assert len(sections) == 2 and "fall into 2 settings" in text
    (mine,) = [s for s in sections if "0ther0000a" in s]
    assert ": model tiny-other, suite lb" in mine.splitlines()[0] and "- **model**: tiny-other" in mine
    # alone in its section, the other model's run is on its own front, whatever the first model's runs scored
    assert _row(mine, "0ther0000a", "### Main table")[-2] == "yes"
    header = [[c.strip() for c in next(l for l in s.split("### Main table")[1].splitlines()
                                       if l.startswith("| defense")).split("|")] for s in sections]
    assert header[0] == header[1] and "ASR jbb-harmful" in header[0]
    from PIL import Image
    width, height = Image.open(figure).size
    assert width > 1.8 * height  # two panels side by side


def test_an_incomplete_run_is_refused_by_name(runs, tmp_path, capsys):
    broken = tmp_path / "half-done"
    shutil.copytree(runs["none"], broken)
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["status"] = "running"
    (broken / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(HarnessError, match="incomplete run.*half-done"):
        build([runs["reminder"], broken])
    assert main(["leaderboard", str(runs["reminder"]), str(broken), "--out", str(tmp_path / "x.md")]) == 2
    assert "half-done" in capsys.readouterr().err and not (tmp_path / "x.md").exists()


def test_responses_are_escaped_and_shown_only_when_asked(runs, tmp_path):
    copy = tmp_path / "evil"
    shutil.copytree(runs["reminder"], copy)
    lines = (copy / "records.jsonl").read_text().splitlines()
    recs = [json.loads(x) for x in lines]
    evil = "col | col `code` <script>alert('x')</script>\n# heading [link](http://x)"
    for r in recs:
        r["response"] = evil
    (copy / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    plain = build([copy], out=tmp_path / "plain.md")
    assert "alert" not in plain and "Example responses" not in plain
    shown = build([copy], out=tmp_path / "shown.md", show_responses=True)
    assert "<script>" not in shown and "`code`" not in shown and "\n# heading" not in shown
    assert md_escape(evil, 320) in shown
    assert "col &#124; col &#96;code&#96; &lt;script&gt;" in shown
    # the table row holding it keeps its column count: the pipe did not split a cell
    row = next(l for l in shown.splitlines() if "alert" in l)
    header = next(l for l in shown.split("Example responses")[1].splitlines() if l.startswith("| benchmark"))
    assert row.count("|") == header.count("|")


def test_rebuild_is_byte_identical_from_anywhere(runs, tmp_path, monkeypatch):
    out = tmp_path / "site" / "lb.md"
    dirs = [runs["suite"], runs["none"], runs["judge"], runs["reminder"]]
    first = build(dirs, out=out, figure=out.with_suffix(".png")).encode()
    monkeypatch.chdir(runs["root"])
    second = build(list(reversed(dirs)), out=out, figure=out.with_suffix(".png")).encode()
    assert first == second == out.read_bytes()
    command = next(l for l in first.decode().splitlines() if l.startswith("harness leaderboard"))
    assert "--out lb.md --figure lb.png" in command


def test_the_figure_is_a_valid_png(runs, tmp_path):
    fig = tmp_path / "scatter.png"
    assert main(["leaderboard", str(runs["none"]), str(runs["reminder"]), str(runs["judge"]),
                 "--out", str(tmp_path / "lb.md"), "--figure", str(fig)]) == 0
    data = fig.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 200 and height > 200
    assert "![safety vs over-refusal" in (tmp_path / "lb.md").read_text() and "(scatter.png)" in (tmp_path / "lb.md").read_text()


def test_capability_columns_when_metrics_have_them(runs, tmp_path):
    copy = tmp_path / "cap"
    shutil.copytree(runs["none"], copy)
    metrics = json.loads((copy / "metrics.json").read_text())
    metrics["capability"] = {"harness_arc_challenge": {"acc": 0.25, "acc_norm": 0.3125, "n": 16}}
    (copy / "metrics.json").write_text(json.dumps(metrics))
    text = build([copy, runs["reminder"]], out=tmp_path / "lb.md")
    assert "capability harness&#95;arc&#95;challenge" in text
    assert "acc 0.250 / acc&#95;norm 0.312" in _row(text, metrics["run_id"], "### Main table")
    assert "16" in _row(text, metrics["run_id"], "### capability: harness")


def test_pareto_front():
    points = {"a": (0.1, 0.9), "b": (0.5, 0.5), "c": (0.6, 0.6), "d": (0.9, 0.1), "e": (0.1, 0.95)}
    assert pareto_front(points) == {"a", "b", "d"}
