"""The collector tier, checked without Docker or a collector binary (none can run on these machines).

What a real ``otelcol-contrib validate`` would catch first is checked here from the files
themselves: every config parses; every component a pipeline names is defined, and every
defined one is used; every component type exists in the pinned contrib release (its component
list is kept in ``collector-config/components/``); every redaction regex compiles under RE2;
the redaction allow-list keeps every key the SDK emits; the routing condition tests the one
attribute the SDK sets on audit spans; and the compose file is valid against the Compose
Specification's JSON schema and wires the services the configs expect.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import re2
import yaml
from opentelemetry.sdk.resources import Resource

from otel_llm_audit import semconv
from otel_llm_audit.processing.canonical import RESOURCE_KEYS

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / "collector-config"
COMPONENTS = sorted((CONFIG_DIR / "components").glob("otelcol-contrib-*.yaml"))
CONFIGS = {"gateway": CONFIG_DIR / "gateway.yaml", "agent": CONFIG_DIR / "agent.yaml"}
COMPOSE = ROOT / "docker-compose.yml"
KINDS = ("receivers", "processors", "exporters", "connectors", "extensions")
#: The routing condition the SIEM route must test, and nothing more.
ROUTING_CONDITION = f'attributes["{semconv.LLM_AUDIT_AUDIT_RECORD}"] == true'


def _load(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@pytest.fixture(scope="module")
def release() -> dict[str, Any]:
    (path,) = COMPONENTS  # exactly one pinned release
    return _load(path)


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def config(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    return request.param, _load(CONFIGS[request.param])


@pytest.fixture(scope="module")
def gateway() -> dict[str, Any]:
    return _load(CONFIGS["gateway"])


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _load(COMPOSE)


def _type(component_id: str) -> str:
    return component_id.split("/", 1)[0]


def _pipelines(cfg: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    return cfg["service"]["pipelines"]


def _signal(pipeline_id: str) -> str:
    return pipeline_id.split("/", 1)[0]


# ----------------------------------------------------------------------------- the pinned release


def test_one_release_is_pinned_and_named_in_every_file_that_uses_it(release: dict[str, Any]) -> None:
    version = release["version"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    for path in CONFIGS.values():
        head = path.read_text(encoding="utf-8").split("\n\n", 1)[0]
        assert f"contrib distribution v{version}" in head, path.name
        assert f"otel/opentelemetry-collector-contrib:{version}" in head, path.name
    text = (CONFIG_DIR / "components" / f"otelcol-contrib-{version}.yaml").read_text(encoding="utf-8")
    assert "# Source: https://github.com/open-telemetry/opentelemetry-collector-releases/blob/" in text
    for kind in KINDS:
        assert len(release[kind]) >= 10 and release[kind] == sorted(set(release[kind])), kind


def test_every_config_parses_to_the_collectors_top_level_sections(config: tuple[str, dict[str, Any]]) -> None:
    name, cfg = config
    assert set(cfg) <= {*KINDS, "service"}, name
    assert _pipelines(cfg), name
    for pipeline_id, pipeline in _pipelines(cfg).items():
        assert _signal(pipeline_id) in ("traces", "metrics", "logs"), pipeline_id
        assert set(pipeline) <= {"receivers", "processors", "exporters"}, pipeline_id
        assert pipeline["receivers"] and pipeline["exporters"], pipeline_id


def test_every_referenced_component_is_defined_and_every_defined_one_used(config: tuple[str, dict[str, Any]]) -> None:
    name, cfg = config
    connectors = set(cfg.get("connectors") or {})
    used: dict[str, set[str]] = {kind: set() for kind in KINDS}
    for pipeline_id, pipeline in _pipelines(cfg).items():
        for receiver in pipeline["receivers"]:
            assert receiver in (cfg.get("receivers") or {}) or receiver in connectors, (name, pipeline_id, receiver)
            used["connectors" if receiver in connectors else "receivers"].add(receiver)
        for processor in pipeline.get("processors", []):
            assert processor in (cfg.get("processors") or {}), (name, pipeline_id, processor)
            used["processors"].add(processor)
        for exporter in pipeline["exporters"]:
            assert exporter in (cfg.get("exporters") or {}) or exporter in connectors, (name, pipeline_id, exporter)
            used["connectors" if exporter in connectors else "exporters"].add(exporter)
    extensions = cfg["service"].get("extensions", [])
    for extension in extensions:
        assert extension in (cfg.get("extensions") or {}), (name, extension)
    used["extensions"] = set(extensions) | set(_referenced_extensions(cfg))
    for kind in KINDS:
        assert set(cfg.get(kind) or {}) == used[kind], (name, kind)


def _referenced_extensions(cfg: dict[str, Any]) -> Iterator[str]:
    """Extensions named inside components (queue storage, authenticators)."""
    for value in _walk(cfg.get("exporters") or {}):
        if isinstance(value, dict):
            if isinstance(value.get("storage"), str):
                yield value["storage"]
            if isinstance(value.get("authenticator"), str):
                yield value["authenticator"]


def _walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


#: Old names still used on purpose: renamed in contrib close to the pinned release, so the old
#: name (accepted before and after the rename) is the one sure to load.
ALIASES_ON_PURPOSE = {"processors": {"resourcedetection"}, "exporters": {"loadbalancing"}}


def test_every_component_type_exists_in_the_pinned_release(
    config: tuple[str, dict[str, Any]], release: dict[str, Any]
) -> None:
    name, cfg = config
    version = release["version"]
    for kind in KINDS:
        aliases = release.get("aliases", {}).get(kind, {})
        for component_id in cfg.get(kind) or {}:
            component_type = _type(component_id)
            if component_type in aliases:
                assert component_type in ALIASES_ON_PURPOSE.get(kind, set()), f"{name}: {component_type!r} is an alias"
                assert aliases[component_type] in release[kind], f"{name}: {component_type!r} resolves to nothing"
            else:
                assert component_type in release[kind], f"{name}: {kind} type {component_type!r} not in {version}"
    # Renamed in collector 0.144, long before the pinned release: the current names only.
    assert not {"otlp", "otlphttp"} & {_type(e) for e in cfg.get("exporters") or {}}, name


def test_connectors_join_pipelines_of_one_signal_and_route_only_to_their_own(
    config: tuple[str, dict[str, Any]],
) -> None:
    name, cfg = config
    pipelines = _pipelines(cfg)
    for connector_id, connector in (cfg.get("connectors") or {}).items():
        fed_by = [p for p, spec in pipelines.items() if connector_id in spec["exporters"]]
        feeds = {p for p, spec in pipelines.items() if connector_id in spec["receivers"]}
        assert fed_by and feeds, (name, connector_id)
        assert len({_signal(p) for p in [*fed_by, *feeds]}) == 1, (name, connector_id)  # routing keeps the signal
        targets = set(connector.get("default_pipelines", []))
        for row in connector.get("table", []):
            targets |= set(row["pipelines"])
        assert targets == feeds, (name, connector_id)


def test_memory_limiter_comes_first_wherever_data_enters(config: tuple[str, dict[str, Any]]) -> None:
    name, cfg = config
    connectors = set(cfg.get("connectors") or {})
    for pipeline_id, pipeline in _pipelines(cfg).items():
        if not set(pipeline["receivers"]) & connectors:
            assert pipeline["processors"][0] == "memory_limiter", (name, pipeline_id)


def test_network_exporters_queue_on_disk(config: tuple[str, dict[str, Any]]) -> None:
    name, cfg = config
    storages = {e for e in (cfg.get("extensions") or {}) if _type(e) == "file_storage"}
    assert storages, name
    for exporter_id, exporter in (cfg.get("exporters") or {}).items():
        if _type(exporter_id) == "prometheus":  # pulled by Prometheus: nothing to queue
            continue
        # At the top of the exporter (for loadbalancing too: a persistent queue inside its
        # per-gateway `protocol.otlp` would be shared by every gateway's exporter).
        queue = exporter.get("sending_queue")
        assert queue and queue.get("enabled") is True, (name, exporter_id)
        assert queue.get("storage") in storages, (name, exporter_id)
        inner = exporter.get("protocol", {}).get("otlp", {}).get("sending_queue")
        assert inner is None or inner.get("enabled") is False, (name, exporter_id)


def test_nothing_holds_data_in_memory_before_the_disk_queues(config: tuple[str, dict[str, Any]]) -> None:
    """No `batch` processor: it would acknowledge the sender before the data is on disk."""
    name, cfg = config
    for pipeline_id, pipeline in _pipelines(cfg).items():
        assert not any(_type(p) == "batch" for p in pipeline.get("processors", [])), (name, pipeline_id)


def test_servers_listen_on_all_interfaces_inside_the_container(config: tuple[str, dict[str, Any]]) -> None:
    name, cfg = config
    protocols = cfg["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317", name
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318", name


# ----------------------------------------------------------------------------- routing


def test_the_siem_route_is_a_plain_test_of_the_sdks_audit_attribute(gateway: dict[str, Any]) -> None:
    pipelines = _pipelines(gateway)
    connectors = gateway["connectors"]
    traces, logs = connectors["routing/audit"], connectors["routing/audit_logs"]
    assert [(r["context"], r["condition"]) for r in traces["table"]] == [("span", ROUTING_CONDITION)]
    assert [(r["context"], r["condition"]) for r in logs["table"]] == [("log", ROUTING_CONDITION)]
    # Audit spans to the SIEM *and* the tracing backends; everything else to the tracing backends only.
    assert traces["table"][0]["pipelines"] == ["traces/siem", "traces/observability"]
    assert traces["default_pipelines"] == ["traces/observability"]
    # The SIEM pipelines keep everything: no sampler; the tracing pipeline may sample.
    for siem in ("traces/siem", "logs/siem"):
        assert not any(_type(p).endswith("sampler") for p in pipelines[siem].get("processors", [])), siem
        assert pipelines[siem]["exporters"] == ["kafka/siem"], siem
    assert "probabilistic_sampler" in pipelines["traces/observability"]["processors"]
    assert pipelines["traces/observability"]["exporters"] == ["otlp_grpc/jaeger", "otlp_grpc/tempo"]
    # Redaction before the route: both branches get it.
    assert pipelines["traces"]["processors"] == ["memory_limiter", "redaction"]
    assert pipelines["logs"]["processors"] == ["memory_limiter", "redaction"]


def test_the_routing_attribute_is_declared_in_semconv_as_a_boolean() -> None:
    registry = _load(ROOT / "semconv" / "llm_audit.yaml")
    declared = {a["id"]: a for g in registry["groups"] for a in g.get("attributes", []) if "id" in a}
    attribute = declared[semconv.LLM_AUDIT_AUDIT_RECORD]
    assert attribute["type"] == "boolean"
    assert "SIEM" in attribute["note"]


# ----------------------------------------------------------------------------- redaction


def _redaction(gateway: dict[str, Any]) -> dict[str, Any]:
    return gateway["processors"]["redaction"]


def _patterns(gateway: dict[str, Any]) -> list[str]:
    redaction = _redaction(gateway)
    return [*redaction["blocked_values"], *redaction["blocked_key_patterns"], *redaction.get("allowed_values", [])]


def test_re2_is_what_compiles_the_patterns() -> None:
    with pytest.raises(re2.error):  # look-behind: accepted by Python's re, rejected by RE2 (and Go)
        re2.compile(r"(?<=MRN)\d+")


def test_every_redaction_pattern_compiles_under_re2(gateway: dict[str, Any]) -> None:
    patterns = _patterns(gateway)
    assert len(patterns) >= 8
    for pattern in patterns:
        re2.compile(pattern)


@pytest.mark.parametrize(
    "secret",
    [
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "5500005555555559",
        "378282246310005",
        "SSN 219-09-9999 on file",
        "key sk-proj-abcdefghijklmnopqrstuvwx12",
        "sk-ant-api03-abcdefghijklmnopqrstuv",
        "AKIAIOSFODNN7EXAMPLE",
        "AIzaSyA-abcdefghijklmnopqrstuvwxyz01234",
        "Authorization: Bearer abcdefghijklmnop1234",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "-----BEGIN OPENSSH PRIVATE KEY-----",
    ],
)
def test_blocked_values_catch_cards_ssns_keys_and_tokens(gateway: dict[str, Any], secret: str) -> None:
    assert any(re2.search(p, secret) for p in _redaction(gateway)["blocked_values"]), secret


@pytest.mark.parametrize(
    "ordinary",
    [
        "gpt-4o-mini",
        "chat gpt-4o-mini",
        "3f2a9c1d4b5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8",  # a seal hash
        "0af7651916cd43dd8448eb211c80319c",  # a trace id
        "2026-11-27T13:21:20Z",
        "550e8400-e29b-41d4-a716-446655440000",
        '{"EMAIL_ADDRESS":1}',
        "mp1-ed4caa318253854b",
        "Patient <PERSON>, mail <EMAIL_ADDRESS>, card <CREDIT_CARD>",  # the SDK's own masks
        "input_tokens",
    ],
)
def test_blocked_values_leave_ordinary_audit_values_alone(gateway: dict[str, Any], ordinary: str) -> None:
    assert not any(re2.search(p, ordinary) for p in _redaction(gateway)["blocked_values"]), ordinary


def _semconv_keys() -> set[str]:
    keys: set[str] = set()
    for path in (ROOT / "semconv").glob("*.yaml"):
        for group in _load(path).get("groups", []):
            keys.update(a["id"] for a in group.get("attributes") or [] if "id" in a)
    return keys


def test_the_allow_list_keeps_every_key_the_sdk_emits(gateway: dict[str, Any]) -> None:
    redaction = _redaction(gateway)
    assert redaction["allow_all_keys"] is False
    allowed = set(redaction["allowed_keys"])
    assert len(allowed) == len(redaction["allowed_keys"])  # no duplicates
    needed = _semconv_keys() | set(RESOURCE_KEYS) | set(Resource.create().attributes) | {"event.name"}
    assert len(_semconv_keys()) > 100
    assert needed - allowed == set()


def test_no_key_the_sdk_emits_is_masked_wholesale_by_a_key_pattern(gateway: dict[str, Any]) -> None:
    patterns = _redaction(gateway)["blocked_key_patterns"]
    for key in sorted(set(_redaction(gateway)["allowed_keys"])):
        assert not any(re2.fullmatch(p, key) for p in patterns), key
    assert re2.fullmatch(patterns[0], "x-api-key") and re2.fullmatch(patterns[0], "db.password")


def test_redaction_adds_no_summary_attributes_that_would_change_sealed_spans(gateway: dict[str, Any]) -> None:
    assert _redaction(gateway)["summary"] == "silent"


# ----------------------------------------------------------------------------- compose


def test_compose_file_is_valid_against_the_compose_specification_schema(compose: dict[str, Any]) -> None:
    schema = json.loads((ROOT / "tests" / "data" / "compose-spec.json").read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema).validate(compose)
    with pytest.raises(jsonschema.ValidationError):  # the schema is strict enough to catch a typo
        jsonschema.Draft7Validator(schema).validate({"services": {"x": {"image": "a", "imagee": "b"}}})


def test_compose_runs_the_pinned_images_and_mounts_files_that_exist(
    compose: dict[str, Any], release: dict[str, Any]
) -> None:
    services = compose["services"]
    assert {"otel-collector", "jaeger", "tempo", "grafana", "prometheus", "kafka", "demo"} <= set(services)
    for name, service in services.items():
        image = service.get("image")
        if image is None:
            assert (ROOT / service["build"]["context"] / service["build"]["dockerfile"]).is_file(), name
            continue
        repository, _, tag = image.rpartition(":")
        assert repository and re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{name}: image {image!r} is not pinned"
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source} is missing"
    assert services["otel-collector"]["image"] == f"otel/opentelemetry-collector-contrib:{release['version']}"
    mount = "./collector-config/gateway.yaml:/etc/otelcol-contrib/config.yaml:ro"
    assert mount in services["otel-collector"]["volumes"]
    assert services["jaeger"]["image"].startswith("jaegertracing/jaeger:2.")  # v2: v1 all-in-one is end of life


def test_compose_wires_the_services_the_gateway_sends_to(compose: dict[str, Any], gateway: dict[str, Any]) -> None:
    services = compose["services"]
    exporters = gateway["exporters"]
    for exporter_id in ("otlp_grpc/jaeger", "otlp_grpc/tempo"):
        host, port = exporters[exporter_id]["endpoint"].split(":")
        assert host in services and port == "4317", exporter_id
    tempo = _load(ROOT / "stack" / "tempo.yaml")
    assert tempo["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] == "0.0.0.0:4317"
    brokers = services["otel-collector"]["environment"]["SIEM_KAFKA_BROKERS"]
    assert brokers == "kafka:9092" and exporters["kafka/siem"]["brokers"] == ["${env:SIEM_KAFKA_BROKERS}"]
    assert services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"
    # The demo sends OTLP/HTTP to the collector's HTTP receiver.
    assert services["demo"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    # Prometheus scrapes the collector's prometheus exporter.
    scrape = _load(ROOT / "stack" / "prometheus.yml")["scrape_configs"][0]["static_configs"][0]["targets"]
    assert scrape == [f"otel-collector:{exporters['prometheus']['endpoint'].rsplit(':', 1)[1]}"]
    # Every ${env:X} the gateway reads is set by compose, or named in the file's header as optional.
    text = CONFIGS["gateway"].read_text(encoding="utf-8")
    live = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    for variable in re.findall(r"\$\{env:([A-Z0-9_]+)\}", live):
        assert variable in services["otel-collector"]["environment"], variable


def test_grafana_is_provisioned_with_tempo_jaeger_and_the_dashboard(compose: dict[str, Any]) -> None:
    provisioning = ROOT / "stack" / "grafana" / "provisioning"
    sources = {d["type"]: d for d in _load(provisioning / "datasources" / "datasources.yaml")["datasources"]}
    assert sources["tempo"]["url"] == "http://tempo:3200"
    assert sources["jaeger"]["url"] == "http://jaeger:16686"
    assert sources["prometheus"]["url"] == "http://prometheus:9090"
    provider = _load(provisioning / "dashboards" / "dashboards.yaml")["providers"][0]
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./stack/grafana/dashboards:{provider['options']['path']}:ro" in mounts
    dashboard = json.loads((ROOT / "stack" / "grafana" / "dashboards" / "llm-audit.json").read_text(encoding="utf-8"))
    uids = {d["uid"] for d in sources.values()}
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] in uids, panel["title"]


def _prometheus_names(metric: dict[str, Any]) -> set[str]:
    """What the collector's prometheus exporter may call a metric (with or without unit suffixes)."""
    base = metric["metric_name"].replace(".", "_")
    unit = {"s": "seconds", "USD": "USD", "1": "ratio"}.get(metric["unit"], "")
    stems = {base, f"{base}_{unit}"} if unit else {base}
    if metric["instrument"] == "counter":
        return {f"{stem}_total" for stem in stems}
    if metric["instrument"] == "gauge":
        return stems
    return {f"{stem}_{suffix}" for stem in stems for suffix in ("sum", "count", "bucket")}


def test_dashboard_queries_name_the_packages_metrics_and_their_attributes() -> None:
    metrics = {m["metric_name"]: m for m in _load(ROOT / "semconv" / "metrics.yaml")["groups"] if "metric_name" in m}
    dashboard = json.loads((ROOT / "stack" / "grafana" / "dashboards" / "llm-audit.json").read_text(encoding="utf-8"))
    queries = [t["expr"] for p in dashboard["panels"] for t in p["targets"] if "expr" in t]
    covered: set[str] = set()
    for query in queries:
        for name_regex in re.findall(r'__name__=~"([^"]+)"', query):
            matching = {
                name for name, m in metrics.items() if any(re.fullmatch(name_regex, n) for n in _prometheus_names(m))
            }
            assert matching, f"{name_regex!r} matches none of the package's metrics"
            covered |= matching
            labels = {k.replace(".", "_") for m in matching for k in (a["ref"] for a in metrics[m]["attributes"])}
            for group in re.findall(r"by \(([^)]*)\)", query):
                for label in (g.strip() for g in group.split(",")):
                    assert label == "le" or label in labels, f"{label!r} is no attribute of {sorted(matching)}"
    assert {
        "llm_audit.cost",
        "llm_audit.budget.utilization",
        "gen_ai.client.token.usage",
        "gen_ai.client.operation.duration",
    } <= covered
    (traceql,) = [t["query"] for p in dashboard["panels"] for t in p["targets"] if "query" in t]
    assert traceql.startswith(f"{{ span.{semconv.LLM_AUDIT_AUDIT_RECORD} = true }}")
    # Attributes asked for in the scope they live in: the policy fields are event attributes.
    events = {ref["ref"] for g in _load(ROOT / "semconv" / "events.yaml")["groups"] for ref in g["attributes"]}
    for scope, key in re.findall(r"\b(span|event)\.([a-z_.]+[a-z])", traceql):
        if scope == "event":
            assert key in events, key
        else:
            assert key in _semconv_keys() and not key.startswith("llm_audit.policy."), key
    assert "event.llm_audit.policy.category" in traceql
