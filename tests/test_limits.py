"""Every size in a spec is bounded, and a bad run store is one clear line: ActlabError, exit code 2."""

import sqlite3
import subprocess
import sys

import pytest

import actlab
from actlab.activations.registry import LIMITS
from actlab.store import RunStore

TOO_LARGE = ["spline(knots=100000000)", "spline(knots=4097)", "subnet(hidden=1000000000)", "subnet(depth=17)",
             "slaf(degree=33)", "rational(num=25)", "rational(den=1000)"]


@pytest.mark.parametrize("spec", TOO_LARGE)
def test_oversized_spec_is_refused_with_its_limit(spec):
    with pytest.raises(actlab.SpecError, match="too large; the limit is"):
        actlab.make_activation(spec)


def test_limits_cover_every_size_parameter_of_the_families():
    assert set(LIMITS) == {"knots", "degree", "hidden", "depth", "num", "den"}


def test_per_channel_parameters_of_a_huge_site_are_refused():
    with pytest.raises(actlab.SpecError, match="use sharing=layer"):
        actlab.make_activation("spline(knots=4096,sharing=channel)", actlab.Site(1 << 16))


def test_deeply_nested_and_very_long_expressions_are_refused_before_parsing():
    with pytest.raises(actlab.SpecError, match="nests 1000 brackets deep"):
        actlab.make_activation("relu(" * 1000 + "x" + ")" * 1000)
    with pytest.raises(actlab.SpecError, match="characters; the limit is"):
        actlab.make_activation("+".join(["relu(x)"] * 3000).replace("+", ","))
    actlab.make_activation("relu(" * 50 + "x" + ")" * 50)  # moderate nesting still parses


def test_corrupt_run_store_is_one_line_and_exit_code_2(tmp_path):
    (tmp_path / "actlab.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(actlab.ActlabError, match="not a usable actlab run store"):
        RunStore(tmp_path)
    out = subprocess.run([sys.executable, "-m", "actlab.cli", "results", str(tmp_path)], capture_output=True,
                         text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_foreign_sqlite_database_is_refused_and_left_unchanged(tmp_path):
    db = sqlite3.connect(tmp_path / "actlab.sqlite")
    db.execute("CREATE TABLE photos (id INTEGER, path TEXT)")
    db.commit()
    db.close()
    with pytest.raises(actlab.ActlabError, match="another program"):
        RunStore(tmp_path)
    db = sqlite3.connect(tmp_path / "actlab.sqlite")
    assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == ["photos"]
