"""Configuration fails fast, naming the field; sources override in a known order."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli.main import app
from services.config import ConfigError, HttpDestination, bootstrap_from_env, load_settings

GOOD = """
[providers.stripe]
secrets = ["env:BW_TEST_STRIPE_SECRET", "whsec_old"]
[providers.shop]
kind = "shopify"
secrets = ["file:{secret_file}"]
admission = {{ rate = 10, burst = 20 }}
[edge]
port = 8100
"""


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    secret_file = tmp_path / "shopify.secret"
    secret_file.write_text("from-a-file\n")
    monkeypatch.setenv("BW_TEST_STRIPE_SECRET", "whsec_from_env")
    path = tmp_path / "breakwater.toml"
    path.write_text(GOOD.format(secret_file=secret_file))
    return path


def test_file_values_and_secret_references_resolve(config_file: Path) -> None:
    settings = load_settings(config_file)
    stripe = settings.providers["stripe"]
    assert [s.get_secret_value() for s in stripe.secrets] == ["whsec_from_env", "whsec_old"]
    assert settings.providers["shop"].secrets[0].get_secret_value() == "from-a-file"
    assert settings.provider_kind("shop") == "shopify"
    assert settings.edge.port == 8100


def test_environment_overrides_the_file(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BREAKWATER_EDGE__PORT", "9100")
    assert load_settings(config_file).edge.port == 9100


def test_secrets_never_appear_in_repr(config_file: Path) -> None:
    settings = load_settings(config_file)
    assert "whsec_from_env" not in repr(settings)
    assert "from-a-file" not in str(settings.model_dump())


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"BREAKWATER_EDGE__PORT": "70000"}, "edge.port"),
        ({"BREAKWATER_EDGE__MAX_BODY_BYTES": "-1"}, "edge.max_body_bytes"),
        ({"BREAKWATER_LOG_LEVEL": "LOUD"}, "log_level"),
        ({"BREAKWATER_KAFKA__LOCAL__PORT": "x"}, "kafka.local.port"),
    ],
)
def test_bad_environment_value_names_the_field(
    env: dict[str, str], field: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=rf"(?m)^  {field}: "):
        load_settings(None)


def test_missing_env_secret_names_the_field_not_the_value(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[providers.stripe]\nsecrets = ["env:BW_TEST_UNSET_SECRET"]\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert "providers.stripe.secrets.0" in str(info.value)
    assert "BW_TEST_UNSET_SECRET is not set" in str(info.value)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[providers.acme]\nsecrets = ["x"]\n', "needs kind"),
        ("[providers.stripe]\nsecrets = []\n", "has no secrets"),
        ('[providers.pp]\nkind = "paypal"\n', "needs webhook_id"),
        ('[providers."Bad Name"]\nkind = "github"\nsecrets = ["x"]\n', "must match"),
        ('[signing]\nactive_key_id = "k9"\nkeys = { k1 = "x" }\n', "signing"),
        ("[edge]\nportt = 1\n", "edge.portt"),
        (
            '[[pipeline.retry_tiers]]\nname = "b"\ndelay_seconds = 5\n[[pipeline.retry_tiers]]\nname = "a"\n'
            "delay_seconds = 1\n",
            "ascending",
        ),
    ],
)
def test_bad_file_values_fail_with_a_clear_message(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_settings(path)


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_prod_refuses_the_dev_signing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BREAKWATER_ENVIRONMENT", "prod")
    with pytest.raises(ConfigError, match="dev"):
        load_settings(None)


def test_the_local_config_shipped_with_make_run_is_valid() -> None:
    settings = load_settings(Path(__file__).parents[2] / "deploy" / "local" / "breakwater.toml")
    assert set(settings.providers) >= {"stripe", "github", "shopify", "standard"}


def test_short_bootstrap_variable_names_an_external_cluster(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BREAKWATER_KAFKA_BOOTSTRAP", "kafka-1:9092,kafka-2:9092")
    settings = load_settings(config_file)
    assert settings.kafka.servers == "kafka-1:9092,kafka-2:9092"
    assert settings.providers["stripe"]  # the file still applies


def test_tools_without_a_config_file_read_either_bootstrap_spelling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BREAKWATER_KAFKA__BOOTSTRAP", raising=False)
    monkeypatch.delenv("BREAKWATER_KAFKA_BOOTSTRAP", raising=False)
    assert bootstrap_from_env() is None
    monkeypatch.setenv("BREAKWATER_KAFKA_BOOTSTRAP", "short:9092")
    assert bootstrap_from_env() == "short:9092"
    monkeypatch.setenv("BREAKWATER_KAFKA__BOOTSTRAP", "nested:9092")
    assert bootstrap_from_env() == "nested:9092"  # as in load_settings, the nested name wins


def test_service_dependency_cycles_are_refused_at_start(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[services.a]\ndepends_on = ["b"]\n[services.b]\ndepends_on = ["a"]\n')
    with pytest.raises(ConfigError, match=r"services: .*cycle: a -> b -> a"):
        load_settings(path)


# Issue #13, item 12d: each of these gave a traceback, or passed the load and then killed the edge.
@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            '[edge]\nport = 8000\n[providers.stripe\nsecrets = ["x"]\n',
            r"c\.toml: .*\(at line 3, column \d+\)",
        ),
        ("[edge]\nport = = 1\n", r"c\.toml: .*line 2"),
        ('[providers.stripe]\nsecrets = [""]\n', r"providers\.stripe\.secrets\.0: secret is empty"),
        ('[providers.stripe]\nsecrets = ["  "]\n', r"providers\.stripe\.secrets\.0: secret is empty"),
        (
            '[providers.std]\nkind = "standard"\n'
            'secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_no t!"]\n',
            r"(?m)^  providers\.std\.secrets\[1\]: secret is not whsec_ followed by base64$",
        ),
        (
            '[providers.standard]\nsecrets = ["whsec_"]\n',
            r"providers\.standard\.secrets\[0\]: secret is empty",
        ),
        ('[signing]\nactive_key_id = "k"\nkeys = { k = "" }\n', r"signing\.keys\.k: secret is empty"),
    ],
)
def test_broken_files_and_unusable_secrets_fail_at_load_naming_where(
    tmp_path: Path, toml: str, expected: str
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(info.value).startswith("invalid configuration:\n  ")
    assert re.search(expected, str(info.value)), str(info.value)


def test_empty_secrets_from_references_name_the_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty_file = tmp_path / "empty.secret"
    empty_file.write_text("\n")
    monkeypatch.setenv("BW_TEST_EMPTY_SECRET", "")
    path = tmp_path / "c.toml"
    path.write_text(f'[providers.stripe]\nsecrets = ["env:BW_TEST_EMPTY_SECRET", "file:{empty_file}"]\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert (
        "providers.stripe.secrets.0: secret is empty (environment variable BW_TEST_EMPTY_SECRET)" in message
    )
    assert f"providers.stripe.secrets.1: secret is empty (file {empty_file})" in message


def test_an_empty_operator_token_is_refused_not_matched_by_an_empty_bearer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BREAKWATER_OPERATORS__TOKEN", "")
    with pytest.raises(ConfigError, match=r"operators\.token: secret is empty"):
        load_settings(None)


def test_an_unreadable_or_binary_config_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_bytes(b"\xff\xfe[edge]\n")
    with pytest.raises(ConfigError, match=r"c\.toml: "):
        load_settings(path)


def test_an_environment_value_that_is_no_json_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BREAKWATER_PROVIDERS", "{not json")
    with pytest.raises(ConfigError, match=r'invalid configuration:\n  .*"providers"'):
        load_settings(None)


@pytest.mark.parametrize(
    "toml",
    ['[providers.stripe\nsecrets = ["x"]\n', '[providers.standard]\nsecrets = ["whsec_%%%"]\n'],
)
def test_the_cli_prints_the_error_never_a_traceback(tmp_path: Path, toml: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(toml)
    result = CliRunner().invoke(app, ["--config", str(path), "topics", "list"])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: invalid configuration:\n  ")
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)


def test_an_old_flat_breaker_or_pacing_key_fails_naming_its_new_spelling(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[pipeline.destinations.crm]\nkind = "http"\nurl = "http://crm/"\n'
        "breaker_failure_rate = 0.5\nadaptive_min_rate = 2\n"
        '[[pipeline.routes]]\ndestinations = ["crm"]\n'
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert "pipeline.destinations.crm" in str(info.value)
    assert "breaker_failure_rate is now spelled breaker.failure_rate" in str(info.value)
    assert "adaptive_min_rate is now spelled rate_limit.min" in str(info.value)


def test_destinations_and_apis_spell_breaker_and_pacing_alike(tmp_path: Path) -> None:
    knobs = "breaker = { failure_rate = 0.25, open_for = 5 }\nrate_limit = { start = 5, min = 1, max = 10 }\n"
    path = tmp_path / "c.toml"
    path.write_text(
        f'[pipeline.destinations.crm]\nkind = "http"\nurl = "http://crm/"\n{knobs}'
        '[[pipeline.routes]]\ndestinations = ["crm"]\n'
        f'[apis.crm]\nbase_url = "http://crm/"\n{knobs}'
    )
    settings = load_settings(path)
    destination, api = settings.pipeline.destinations["crm"], settings.apis["crm"]
    assert isinstance(destination, HttpDestination)
    assert destination.breaker == api.breaker and destination.rate_limit == api.rate_limit
    assert destination.breaker.enabled and destination.breaker.failure_rate == 0.25
    unset = HttpDestination(url="http://crm/")
    assert not unset.breaker.enabled and not unset.rate_limit.enabled  # off unless configured


def test_the_root_settings_load_no_feature_runtime() -> None:
    """The root validates ``[apis]`` and ``[services]`` from settings-only modules."""
    code = (
        "import sys, services.config; "
        "print(' '.join(sorted(m for m in sys.modules if m.startswith(('services.outbound', "
        "'services.reliability')))))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.split() == [
        "services.outbound",
        "services.outbound.config",
        "services.reliability",
        "services.reliability.config",
    ]
