"""The README's generated figures match what the commands it shows produce (``python -m causalkit.docs``).

Seeded cells are bit-identical, so rows are compared as text, exactly. The full tour sweep
takes about 30 s of CPU (MicroSynth's 200 paired bootstraps), the 2,000-replication MicroSynth
cell minutes, the 5,000-replication planned cell and the 401(k) sensitivity run tens of
seconds; the test checks the sweep's ``naive`` and ``itt`` rows and the 1,413-replication
planned cell (about 6 s of CPU together), the other blocks' presence and command, and the
timing block's format only (wall time depends on the machine).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from causalkit import docs

pytestmark = pytest.mark.cli

README = Path(docs.__file__).resolve().parent.parent / "README.md"
BLOCKS = {b.name: b for b in docs.BLOCKS}


@pytest.fixture(scope="module")
def readme() -> str:
    return README.read_text(encoding="utf-8")


def test_every_block_is_in_the_readme_and_names_its_command(readme):
    for block in docs.BLOCKS:
        text = docs.body(readme, block.name)
        assert text is not None, block.name
        assert f"`{block.command}`" in text, block.name


def test_the_tour_sweeps_naive_and_itt_rows_are_what_the_command_gives(readme, workdir):
    assert docs.check(readme, [BLOCKS["tour-sweep"]], labels=["naive", "itt"]) == []
    assert not (workdir / "runs").exists()  # tracking=none: nothing written


def test_the_planned_cell_sentence_is_what_the_command_gives(readme, workdir):
    assert docs.check(readme, [BLOCKS["target-mcse-coarse"]]) == []


def test_the_timing_block_is_there_and_says_its_figure_depends_on_the_machine(readme):
    assert docs.check(readme, [BLOCKS["tour-sweep-time"]]) == []
    text = docs.body(readme, "tour-sweep-time")
    assert text is not None and " takes ~" in text and "machine-dependent" in text


def test_check_mode_names_the_block_that_differs_and_exits_1(readme, tmp_path, capsys):
    changed = readme.replace("machine-dependent", "measured", 1)
    path = tmp_path / "README.md"
    path.write_text(changed, encoding="utf-8")
    assert docs.main(["--check", "--only", "tour-sweep-time", "--readme", str(path)]) == 1
    assert "tour-sweep-time" in capsys.readouterr().err
    # a figure that changed: the block is named, with what the command gives now
    label = "itt"
    (row,) = [
        line for line in docs.body(readme, "tour-sweep").splitlines() if line.startswith("| itt")
    ]
    stale = readme.replace(row, row.replace("| 0.", "| 9.", 1))
    assert stale != readme
    problems = docs.check(stale, [BLOCKS["tour-sweep"]], labels=[label])
    assert problems == [f"tour-sweep: row differs, expected {row}"]


def test_missing_markers_and_unknown_blocks_are_one_line_errors(tmp_path, capsys):
    path = tmp_path / "README.md"
    path.write_text("# no markers\n", encoding="utf-8")
    assert docs.main(["--check", "--only", "tour-sweep-time", "--readme", str(path)]) == 1
    assert "tour-sweep-time: markers missing" in capsys.readouterr().err
    assert docs.main(["--only", "tour-sweep-time", "--readme", str(path)]) == 2
    assert docs.main(["--check", "--only", "nonsense", "--readme", str(path)]) == 2
    err = capsys.readouterr().err
    assert "--only: expected one of tour-sweep" in err and "got nonsense" in err


def test_a_sweep_command_expands_into_its_cells_as_hydras_basic_sweeper_does():
    assert docs.cells(docs.TOUR_SWEEP) == [
        ("naive", ["estimator=naive", "mc.reps=200"]),
        ("itt", ["estimator=itt", "mc.reps=200"]),
        ("microsynth", ["estimator=microsynth", "mc.reps=200"]),
    ]
    assert docs.cells("python -m causalkit 'data.roles.covariates=[a,b]' mc.reps=2") == [
        ("", ["data.roles.covariates=[a,b]", "mc.reps=2"])
    ]


def test_timings_round_to_five_seconds_and_never_to_zero():
    assert [docs.rounded(s) for s in (0.4, 7.4, 7.6, 34.9, 63)] == [5, 5, 10, 35, 65]
