"""Redaction: URI credentials, reader errors without file contents, values from the environment."""

from __future__ import annotations

import pytest

from causalkit.composition import compose
from causalkit.config import validate
from causalkit.errors import ConfigError
from causalkit.redact import Redactions, read_error, uri_credentials


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("http://user:pass@host:5000/", "http://user:***@host:5000/"),
        ("postgresql://u:p%40ss@db.example/mlflow", "postgresql://u:***@db.example/mlflow"),
        ("postgresql://u:p@ss@db/x", "postgresql://u:***@db/x"),  # '@' left unencoded
        ("https://ghp_token123@host/x", "https://***@host/x"),
        ("http://host/?password=abc&x=1", "http://host/?password=***&x=1"),
        ("mysql://h/db?user=a&Token=zz#f", "mysql://h/db?user=a&Token=***#f"),
        ("got http://a:b@h/ (refused)", "got http://a:***@h/ (refused)"),
        ("sqlite:////tmp/runs/mlflow.db", "sqlite:////tmp/runs/mlflow.db"),
        ("alice@example.org wrote", "alice@example.org wrote"),
    ],
)
def test_uri_credentials(given: str, shown: str) -> None:
    assert uri_credentials(given) == shown


def test_read_error_quotes_nothing_it_read() -> None:
    try:
        b"\xffsecret".decode("utf-8")
    except UnicodeDecodeError as exc:
        assert read_error(exc) == "not utf-8 text (undecodable byte at position 0)"
    exc = ValueError("could not convert string to float: 'root:x:0:0'\nmore")
    assert read_error(exc) == "ValueError: could not convert string to float: '...'"


def test_redactions_text_and_config() -> None:
    r = Redactions(
        paths=((("data", "path"), "${oc.env:P}"), (("data", "cols", 1), "${oc.env:C}")),
        values=(("s3cr3t", "${oc.env:S}"),),
    )
    assert (
        r.text("open /x/s3cr3t.csv at http://u:pw@h/")
        == "open /x/${oc.env:S}.csv at http://u:***@h/"
    )
    logged = r.config({"data": {"path": "/x/s3cr3t.csv", "cols": ["a", "b"]}, "mc": {"reps": 1}})
    assert logged == {
        "data": {"path": "${oc.env:P}", "cols": ["a", "${oc.env:C}"]},
        "mc": {"reps": 1},
    }
    assert not Redactions()


def test_environment_values_are_found_through_interpolations(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CK_NAME", "hunter2-secret")
    monkeypatch.delenv("CK_UNSET", raising=False)
    raw = compose(
        [
            "estimator=itt",
            "tracking.run_name=run-${oc.env:CK_NAME}",
            "tracking.experiment=${oc.env:CK_UNSET,fallback}",
        ]
    )
    assert raw["tracking"]["run_name"] == "run-hunter2-secret"  # the run gets the real value
    cfg = validate(raw)
    assert cfg.tracking.run_name == "run-${oc.env:CK_NAME}"  # its name shows the interpolation
    assert cfg.tracking.experiment == "fallback"
    logged = cfg.logged_dict()["tracking"]
    assert logged["run_name"] == "run-${oc.env:CK_NAME}"
    assert logged["experiment"] == "${oc.env:CK_UNSET}"
    assert "hunter2" not in str(cfg.logged_dict())
    assert cfg.cell_hash == validate(compose(["estimator=itt"])).cell_hash


def test_a_validation_error_shows_the_interpolation_not_the_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CK_REPS", "many-secret-reps")
    with pytest.raises(ConfigError, match=r"^mc\.reps: .*got '\$\{oc\.env:CK_REPS\}'$") as info:
        validate(compose(["estimator=itt", "mc.reps=${oc.env:CK_REPS}"]))
    assert "many-secret" not in str(info.value)
