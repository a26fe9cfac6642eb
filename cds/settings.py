"""One configuration surface: environment variables with the ``CDS_`` prefix.

An optional YAML config file (``CDS_CONFIG_FILE`` or ``cds serve --config``)
supplies defaults; environment variables override it. ``Settings.check()``
refuses unsafe combinations before the service starts.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from cds.yamlio import load_yaml

DEFAULT_RULES_DIR = Path(__file__).resolve().parent.parent / "rules"


# Asymmetric JWS algorithms only: CDS Hooks forbids `none` and every symmetric (HMAC) algorithm.
# Defined here, not in cds.auth, because the settings check CDS_JWT_ALGORITHMS and sit below auth.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}
)
DEFAULT_ALGORITHMS = ("ES384", "RS384")  # the two the spec recommends


def check_algorithms(algorithms: list[str] | tuple[str, ...]) -> list[str]:
    refused = [a for a in algorithms if a not in ASYMMETRIC_ALGORITHMS]
    if refused:
        raise ValueError(
            f"not an asymmetric JWS algorithm: {', '.join(refused)} (none and HMAC are never accepted); "
            f"choose from {', '.join(sorted(ASYMMETRIC_ALGORITHMS))}"
        )
    if not algorithms:
        raise ValueError("at least one algorithm is needed")
    return list(algorithms)


class SettingsError(ValueError):
    """Invalid or unsafe configuration; the message names the setting."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CDS_", extra="forbid", validate_default=True)

    profile: Literal["demo", "production"] = "production"
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    rules_dir: Path = DEFAULT_RULES_DIR
    database_url: SecretStr = SecretStr("sqlite:///data/cds.sqlite3")
    engine: Literal["auto", "durable", "reference"] = "auto"
    # Hot reload: every worker checks rules/ for changes this often (0 turns the watch off;
    # SIGHUP still reloads a single-process server).
    rules_watch_seconds: float = Field(default=5.0, ge=0)
    # The start-up rule-test gate (ADR 0014): a pass is recorded in this directory under the digest of the
    # rules, the code and the libraries, and a start or reload with the same inputs does not run the tests
    # again (a failure is never recorded). Off: run them every time. Default: $XDG_CACHE_HOME/cds/rule-test-verdicts.
    rule_test_verdicts: bool = True
    rule_test_verdicts_dir: Path | None = None
    # The YAML parse results of rules/ kept for the next start (ADR 0014), keyed by the exact bytes of every
    # file under rules/ and the parser's code and versions. Off: parse at every start. Default: the
    # subdirectory parsed-rules/ of the rule-test verdict directory.
    rules_parse_cache: bool = True
    rules_parse_cache_dir: Path | None = None
    # Feedback and audit store (cds.store): connect/lock timeout, audit records kept while the database is down,
    # and the secret key of the patient-id HMAC in the audit (required in production).
    database_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    audit_queue_limit: int = Field(default=1000, ge=1)
    audit_hmac_key: SecretStr | None = None
    # Write-ahead audit (ADR 0008): records the database cannot take when a card is answered are
    # fsynced to JSON-lines files here (default: beside a SQLite file, else ./data/audit-spool).
    audit_spool: bool = True
    audit_spool_dir: Path | None = None
    # Feedback: items per post, and rows kept per card (a client cannot inflate the report).
    max_feedback_items: int = Field(default=100, ge=1, le=10000)
    feedback_per_card_limit: int = Field(default=20, ge=1)
    # /readyz also needs the store when this is on (hooks answer without it; feedback does not).
    store_required_for_readiness: bool = False
    # The snooze lookup on the hook path waits at most this long; then the card is shown (fail open).
    snooze_lookup_timeout_seconds: float = Field(default=0.25, gt=0, le=5)
    # Off: overrides never hide a card (no lookup on the hook path); the benchmark's baseline.
    snooze_enabled: bool = True

    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    # HTTP server limits (uvicorn, h11): request line + headers, idle keep-alive, open connections.
    max_header_bytes: int = Field(default=64 * 1024, ge=4096, le=1024 * 1024)
    keep_alive_seconds: int = Field(default=5, ge=1, le=300)
    max_connections: int = Field(default=1000, ge=1)
    # Both bound the request line and headers by max_header_bytes (httptools through cds.serving's
    # subclass); httptools parses in C and costs less CPU per request (ADR 0015).
    http_protocol: Literal["h11", "httptools"] = "httptools"
    # Fail fast when saturated: over this many hook/feedback requests in flight
    # per worker, answer 503 with Retry-After instead of queueing.
    max_concurrent_requests: int = Field(default=64, ge=1)
    # Overall deadline for one hook call (prefetch completion included).
    request_deadline_seconds: float = Field(default=3.0, gt=0, le=60)
    metrics_enabled: bool = True
    # /metrics needs `Authorization: Bearer <this>`; without it /metrics is served only in the demo profile.
    metrics_token: SecretStr | None = None
    # List settings: comma-separated in the environment (as documented) or a JSON array. NoDecode keeps
    # pydantic-settings from insisting on JSON before the splitting validators see the value.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Authentication of the EHR (CDS Hooks JWT). Off only for a loopback demo.
    auth_required: bool = True
    external_base_url: str | None = None  # the URL EHRs use; JWT `aud` is checked against it
    trusted_clients_file: Path | None = None  # YAML: iss -> jwks_file | allow-listed jku (cds.auth.clients)
    jwt_algorithms: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(DEFAULT_ALGORITHMS))
    jwt_clock_skew_seconds: float = Field(default=30, ge=0, le=300)
    jwt_max_lifetime_seconds: float = Field(default=3600, gt=0, le=86400)
    # Where seen jtis are kept: this process only, or the shared database (several workers or hosts).
    # "auto": the database whenever CDS_WORKERS > 1; "memory" with several workers is refused at start.
    jwt_replay_store: Literal["auto", "memory", "database"] = "auto"
    jwks_cache_seconds: float = Field(default=3600, gt=0)
    jwks_min_refresh_seconds: float = Field(default=30, ge=0)

    # Fetching prefetch data the EHR did not send (cds.hooks.fhir_client). The hook answers within
    # about fhir_total_timeout_seconds plus the evaluation: 1.5 s + evaluation keeps it under 2 s.
    fhir_request_timeout_seconds: float = Field(default=1.0, gt=0, le=60)
    fhir_total_timeout_seconds: float = Field(default=1.5, gt=0, le=120)
    fhir_max_pages: int = Field(default=10, ge=1, le=1000)
    # GETs of one hook call in all (keys and pages): bounds what one call can make the service send.
    fhir_max_requests_per_call: int = Field(default=30, ge=1, le=1000)

    # Size limits of one hook call (cds.hooks.limits): beyond them the answer is an OperationOutcome
    # (422 nesting, 413 resources, 422 facts), never a silent 200 without cards.
    max_json_depth: int = Field(default=100, ge=16, le=1000)
    max_resources: int = Field(default=50_000, ge=1)
    max_facts: int = Field(default=5000, ge=1, le=5000)  # the engine's own cap (cds.engine.prepare.MAX_FACTS)

    # Extension key that asks for the evaluation trace in the response.
    trace_extension_key: str = "org.calciphylaxis-cds.trace"
    # Namespace of the radiologist's reverse-domain hook.
    hook_namespace: str = "org.calciphylaxis-cds"

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("jwt_algorithms", mode="before")
    @classmethod
    def _split_algorithms(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("jwt_algorithms")
    @classmethod
    def _asymmetric_algorithms(cls, value: list[str]) -> list[str]:
        return check_algorithms(value)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _no_empty_token(cls, value: Any) -> Any:
        # An empty token (e.g. an unset variable in docker-compose) means none, never "any bearer".
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        return None if isinstance(raw, str) and not raw.strip() else value

    @property
    def replay_store(self) -> Literal["memory", "database"]:
        """The replay store in effect: "auto" is the shared database as soon as there are several workers."""
        if self.jwt_replay_store == "auto":
            return "database" if self.workers > 1 else "memory"
        return self.jwt_replay_store

    @property
    def binds_loopback(self) -> bool:
        if self.host in {"localhost"}:
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def check(self) -> None:
        """Refuse unsafe settings with a message that names the setting."""
        if not self.auth_required and not self.binds_loopback:
            raise SettingsError(
                f"CDS_AUTH_REQUIRED=false is only allowed when bound to loopback; CDS_HOST={self.host!r} is not"
            )
        if self.profile == "production" and "*" in self.cors_origins:
            raise SettingsError("CDS_CORS_ORIGINS='*' is not allowed in the production profile")
        if not self.rules_dir.is_dir():
            raise SettingsError(f"CDS_RULES_DIR={str(self.rules_dir)!r} is not a directory")
        if self.fhir_total_timeout_seconds >= self.request_deadline_seconds:
            raise SettingsError(
                "CDS_FHIR_TOTAL_TIMEOUT_SECONDS must be below CDS_REQUEST_DEADLINE_SECONDS, "
                "so that a slow fhirServer gives 412 and the rules still have time to run"
            )
        if self.auth_required and not self.external_base_url:
            raise SettingsError(
                "CDS_EXTERNAL_BASE_URL is required when authentication is on: "
                "a JWT's aud is checked against the URL the EHR calls"
            )
        if self.auth_required and self.workers > 1 and self.jwt_replay_store == "memory":
            raise SettingsError(
                "CDS_JWT_REPLAY_STORE=memory with CDS_WORKERS > 1 would accept a token once per worker; "
                "use database (or auto)"
            )
        if self.auth_required and self.trusted_clients_file is None:
            raise SettingsError("CDS_TRUSTED_CLIENTS_FILE is required when authentication is on")
        if self.profile == "production" and self.audit_hmac_key is None:
            raise SettingsError("CDS_AUDIT_HMAC_KEY is required in the production profile (it keys the patient hash)")

    def masked(self) -> dict[str, Any]:
        """The effective configuration with secrets masked (for `cds config show`)."""
        shown: dict[str, Any] = {}
        for name, value in self.model_dump(mode="json").items():
            if isinstance(getattr(self, name), SecretStr):
                raw = getattr(self, name).get_secret_value()
                # A URL keeps all but its password; any other secret (a key) is hidden whole.
                value = _mask_url(raw) if "://" in raw else "***"
            shown[name] = value
        return shown


def _split_list(value: Any) -> Any:
    """A list setting from the environment: a JSON array, or comma-separated values."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError:
            pass  # not JSON after all: let the validator say what is wrong with the list
    return [v.strip() for v in text.split(",") if v.strip()]


def _mask_url(raw: str) -> str:
    """Hide a password inside a database URL; keep the rest readable."""
    if "://" in raw and "@" in raw:
        scheme, rest = raw.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return raw


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from an optional YAML file, then the environment, then overrides."""
    file_values: dict[str, Any] = {}
    if config_file is not None:
        try:
            loaded = load_yaml(config_file.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise SettingsError(f"config file {config_file}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise SettingsError(f"config file {config_file}: expected a mapping of setting names")
        file_values = {str(k).lower(): v for k, v in loaded.items()}
    try:
        # Init arguments outrank the environment, so the file's values go in
        # only where the environment sets nothing.
        env_settings = Settings()
        explicit_env = env_settings.model_fields_set
        merged = {**file_values, **{k: getattr(env_settings, k) for k in explicit_env}, **overrides}
        return Settings(**merged) if merged else env_settings
    except ValueError as exc:
        raise SettingsError(_describe_validation_error(exc)) from exc


def rules_dir_setting(explicit: Path | None = None) -> Path:
    """A command's rules directory: its ``--rules`` when given, else ``CDS_RULES_DIR`` read through
    ``Settings`` (else ``rules/`` of the source tree). Every command that reads rules/ uses this, so
    the variable has one reading and one error message."""
    return explicit if explicit is not None else load_settings().rules_dir


def _describe_validation_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc)
    parts = []
    for err in errors():
        name = ".".join(str(p) for p in err.get("loc", ())) or "settings"
        parts.append(f"CDS_{name.upper()}: {err.get('msg')}")
    return "; ".join(parts)
