"""Issue 26 item 2: a secret written in an experiment file appears in no file of the run, in no
log line, and in no MLflow record, however it was written (table or inline)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from medaug.cli.app import app
from tests.experiments import experiment_head
from tests.faults.leaks import files_containing

KEY = "sk-LEAKCHECK0123456789abcdef"
S3_SECRET = "S3SECRETLEAKCHECK987654321"
PSEUDONYM_KEY = "pseudonymkeyLEAKCHECK0123"

HEAD = experiment_head("secrets", n=40)
TABLES = f"""
[settings]
image_size = 32
pseudonym_key = "{PSEUDONYM_KEY}"
[settings.trainers.cnn]
epochs = 1
[settings.quality]
in_experiments = false
[settings.tracking]
mlflow_uri = "mlruns"
[settings.generators.openai]
api_key = "{KEY}"
[settings.store.s3]
access_key_id = "AKIALEAKCHECK"
secret_access_key = "{S3_SECRET}"
"""
INLINE = f"""
[settings]
image_size = 32
pseudonym_key = "{PSEUDONYM_KEY}"
trainers = {{ cnn = {{ epochs = 1 }} }}
quality = {{ in_experiments = false }}
tracking = {{ mlflow_uri = "mlruns" }}
generators = {{ openai = {{ api_key = "{KEY}" }} }}
store = {{ s3 = {{ access_key_id = "AKIALEAKCHECK", secret_access_key = "{S3_SECRET}" }} }}
"""


@pytest.mark.parametrize("form", [TABLES, INLINE], ids=["tables", "inline"])
def test_no_secret_of_the_settings_reaches_any_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MEDAUG_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("MEDAUG_LOG_LEVEL", "debug")
    (tmp_path / "exp.toml").write_text(HEAD + form)
    result = CliRunner().invoke(app, ["experiment", "run", "exp.toml", "--fresh"])
    assert result.exit_code == 0, result.output
    run = tmp_path / "work" / "runs" / "secrets"
    assert (run / "results.json").is_file() and (run / "report.html").is_file()
    assert KEY[:10] not in result.output and S3_SECRET not in result.output
    written = files_containing(tmp_path, [KEY, S3_SECRET, PSEUDONYM_KEY])
    written.pop("exp.toml")  # the user's own file
    assert written == {}
    assert any((tmp_path / "mlruns").rglob("*")), "MLflow recorded nothing: the check above saw no params"


def test_a_secret_in_an_arm_s_options_is_refused_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MEDAUG_WORK_DIR", str(tmp_path / "work"))
    arms = f'arms = [{{ name = "edits", generators = ["openai"], options = {{ api_key = "{KEY}" }} }}]'
    (tmp_path / "exp.toml").write_text(HEAD.replace('arms = ["none", "classic"]', arms))
    result = CliRunner().invoke(app, ["experiment", "run", "exp.toml"])
    assert result.exit_code != 0
    assert "api_key" in result.output and "secret" in result.output
    assert KEY not in result.output
    assert not (tmp_path / "work" / "runs").exists()


def test_redaction_covers_escaped_and_quoted_forms_of_a_secret_field() -> None:
    from medaug.adapters.redaction import redact_settings_text
    from medaug.composition.settings import Settings

    settings = Settings(generators={"openai": {"api_key": KEY}})
    text = f'api_key = "{KEY}"\n"api_key"=\'other-secret\'\nx = {{ api_key = "sk-\\u0041BC" }}\nmodel = "gpt"\n'
    redacted = redact_settings_text(text, settings)
    assert KEY not in redacted and "other-secret" not in redacted and "u0041BC" not in redacted
    assert 'model = "gpt"' in redacted
