"""Config sections the host itself owns: HTTP server, storage, tracing."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from bmo.hookspecs import hookimpl


class HttpServerOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    addr: str = "127.0.0.1:9000"
    max_body_bytes: int = 4 * 1024 * 1024
    requester_trusted_proxies: list[str] = []
    shutdown_grace_s: float = 10.0
    # "auto": uvloop when installed (it is a dependency off Windows), else asyncio's own loop.
    event_loop: Literal["auto", "asyncio", "uvloop"] = "auto"
    # Host names (no port) accepted besides loopback and the bind address; "*" accepts any (DNS rebinding!).
    allowed_hosts: list[str] = []
    # Browser origins ("https://app.example") that may call the API; CORS is answered for these only.
    allowed_origins: list[str] = []
    max_json_depth: Annotated[int, msgspec.Meta(ge=1)] = 64  # deeper nesting in a JSON body is a 400
    body_read_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 30.0  # a request body must arrive in full within this
    # An idle keep-alive connection, or one that never completes its request headers, is closed after this.
    keepalive_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 15.0
    # The listening socket's accept queue (aiohttp's default is 128); the kernel caps it at net.core.somaxconn.
    backlog: Annotated[int, msgspec.Meta(ge=1)] = 2048
    # Streamed answers open at once; one more is a 503 with Retry-After. 0: no limit.
    max_concurrent_streams: Annotated[int, msgspec.Meta(ge=0)] = 1000
    # Processes serving one port (`bmo serve --workers N`); each is a full server over the shared store.
    workers: Annotated[int, msgspec.Meta(ge=1, le=64)] = 1


class StorageOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    data_dir: str = ""  # empty: $XDG_STATE_HOME/bmo


class RetentionLimits(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    max_age_days: Annotated[float, msgspec.Meta(ge=0)] = 0  # rows older than this go; 0: no age limit
    max_rows: Annotated[int, msgspec.Meta(ge=0)] = 0  # only the newest this many stay; 0: no count limit


class RetentionOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    interval_s: Annotated[float, msgspec.Meta(ge=0)] = 3600.0  # background prune period; 0: only `bmo store prune`
    batch_rows: Annotated[int, msgspec.Meta(ge=1)] = 500  # rows per writer job: request writes wait for one batch at most
    ledger: RetentionLimits = msgspec.field(default_factory=lambda: RetentionLimits(max_age_days=30))
    runs: RetentionLimits = msgspec.field(default_factory=lambda: RetentionLimits(max_age_days=30))
    audit: RetentionLimits = msgspec.field(default_factory=lambda: RetentionLimits(max_age_days=90))
    # Stored /v1/responses objects: 30 days, as OpenAI keeps them; their sessions follow `sessions`.
    responses: RetentionLimits = msgspec.field(default_factory=lambda: RetentionLimits(max_age_days=30))
    # Sessions and their messages are user data: kept until deleted unless an idle age or count is set.
    sessions: RetentionLimits = msgspec.field(default_factory=RetentionLimits)


class StoreOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    # Empty: SQLite in the data dir. "postgresql://user@host/db": PostgreSQL (also BMO_STORE_URL).
    url: str = ""
    # Other servers use this store too (workers, or instances on one PostgreSQL): session leases, not memory.
    shared: bool = False
    # A shared store's session lease lasts this long unrenewed (renewed every third of it while a run goes);
    # a crashed holder's session is free, and its run closed, this long after its last renewal.
    lease_ttl_s: Annotated[float, msgspec.Meta(ge=1, le=3600)] = 10.0
    retention: RetentionOptions = msgspec.field(default_factory=RetentionOptions)


class TracingOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    otlp_endpoint: str = ""  # empty: the standard OTEL_EXPORTER_OTLP_* variables, else no export
    otlp_protocol: str = ""  # "http/protobuf" or "grpc"; empty: OTEL_EXPORTER_OTLP_PROTOCOL or http/protobuf
    service_name: str = ""  # empty: OTEL_SERVICE_NAME, else "bmo"
    # Message content on model/tool spans; also on with OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true.
    capture_content: bool = False
    capture_max_bytes: Annotated[int, msgspec.Meta(ge=256)] = 8192  # per attribute value
    log_stderr: bool = False
    log_max_bytes: int = 16 * 1024 * 1024
    log_backups: int = 5


@hookimpl
def bmo_config_sections(register):
    register("options.http_server", HttpServerOptions)
    register("storage", StorageOptions)
    register("store", StoreOptions)
    register("tracing", TracingOptions)


@hookimpl
def bmo_posture(register, host):
    from bmo.defaults.writer_posture import records_posture, store_posture

    register("store_writer", store_posture)
    register("records", records_posture)
