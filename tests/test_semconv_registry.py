"""The semantic-convention registry (semconv/*.yaml) and what is generated from it.

Why: the YAML is the single statement of which keys we emit. These tests fail when the
generated module or docs drift from it, when the registry breaks its own rules (types,
briefs, namespaces), or when a key the rest of the code relies on changes by accident.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from otel_llm_audit import semconv

ROOT = Path(__file__).resolve().parent.parent
SEMCONV_DIR = ROOT / "semconv"


def _load_script() -> ModuleType:
    """Import scripts/generate_semconv.py by path (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("generate_semconv", ROOT / "scripts" / "generate_semconv.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


gen = _load_script()


def _raw_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for path in sorted(SEMCONV_DIR.glob("*.yaml")):
        groups.extend(yaml.safe_load(path.read_text(encoding="utf-8"))["groups"])
    return groups


# The keys the brief says we take from upstream, and the ones that are ours.
UPSTREAM_KEYS = {
    "gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model", "gen_ai.request.max_tokens",
    "gen_ai.request.choice.count", "gen_ai.request.temperature", "gen_ai.request.top_p",
    "gen_ai.request.top_k", "gen_ai.request.stop_sequences", "gen_ai.request.frequency_penalty",
    "gen_ai.request.presence_penalty", "gen_ai.request.seed", "gen_ai.request.stream",
    "gen_ai.request.reasoning.level", "gen_ai.request.previous_response.id",
    "gen_ai.request.encoding_formats",
    "gen_ai.output.type", "gen_ai.response.id", "gen_ai.response.model", "gen_ai.response.finish_reasons",
    "gen_ai.response.status", "gen_ai.response.time_to_first_chunk", "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens", "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_write.input_tokens", "gen_ai.usage.reasoning.output_tokens", "gen_ai.conversation.id",
    "gen_ai.embeddings.dimension.count", "gen_ai.system_instructions", "gen_ai.input.messages",
    "gen_ai.output.messages", "gen_ai.tool.definitions", "gen_ai.tool.name", "gen_ai.tool.call.id",
    "gen_ai.tool.type", "gen_ai.tool.description", "gen_ai.tool.call.arguments", "gen_ai.tool.call.result",
    "gen_ai.agent.name", "gen_ai.agent.id", "gen_ai.agent.description", "gen_ai.data_source.id",
    "gen_ai.retrieval.query.text", "gen_ai.retrieval.documents", "gen_ai.memory.store.id",
    "gen_ai.memory.record.id",
    "gen_ai.memory.record.count", "gen_ai.memory.query.text", "gen_ai.memory.records", "gen_ai.workflow.name",
    "gen_ai.prompt.name", "gen_ai.token.type", "openai.request.service_tier", "openai.response.service_tier",
    "openai.response.system_fingerprint", "openai.api.type", "error.type", "server.address", "server.port",
    "user.id", "session.id", "exception.type", "exception.message", "exception.stacktrace",
    "aws.bedrock.guardrail.id", "aws.request_id",
    "gen_ai.retrieval.top_k", "mcp.method.name", "mcp.session.id", "mcp.protocol.version", "mcp.resource.uri",
    "jsonrpc.request.id", "rpc.response.status_code", "network.transport",
}  # fmt: skip
OWN_KEYS = {
    "llm_audit.policy.actor",
    "llm_audit.budget.name", "llm_audit.budget.scope", "llm_audit.budget.period", "llm_audit.budget.period.key",
    "llm_audit.budget.unit", "llm_audit.budget.limit", "llm_audit.budget.spend", "llm_audit.budget.threshold",
    "llm_audit.budget.enforced", "llm_audit.anomaly.rule", "llm_audit.anomaly.observed", "llm_audit.anomaly.limit",
    "llm_audit.actor.type", "llm_audit.auth.method", "llm_audit.tenant.id", "llm_audit.team",
    "llm_audit.application", "llm_audit.content.mode", "llm_audit.content.hashes",
    "llm_audit.content.truncated", "llm_audit.cost.usd", "llm_audit.pricing.version",
    "llm_audit.cost.input_usd", "llm_audit.cost.output_usd", "llm_audit.redaction.status",
    "llm_audit.redaction.entities", "llm_audit.redaction.policy.version", "llm_audit.policy.category",
    "llm_audit.policy.source", "llm_audit.policy.action", "llm_audit.policy.name", "llm_audit.policy.details",
    "llm_audit.audit.record", "llm_audit.sdk.version", "llm_audit.error.component",
    "llm_audit.integrity.stream", "llm_audit.integrity.sequence", "llm_audit.integrity.prev_hash",
    "llm_audit.integrity.hash", "llm_audit.integrity.algorithm", "llm_audit.integrity.key_id",
    "llm_audit.integrity.checkpoint.sequence", "llm_audit.integrity.checkpoint.hash",
    "llm_audit.integrity.checkpoint.time", "llm_audit.integrity.checkpoint.reason",
    "llm_audit.integrity.checkpoint.algorithm", "llm_audit.integrity.checkpoint.signature",
    "llm_audit.integrity.checkpoint.prev_signature", "llm_audit.integrity.checkpoint.pruned",
    "llm_audit.review.subject", "llm_audit.review.action", "llm_audit.review.reviewer", "llm_audit.review.reason",
    "llm_audit.redaction.failure", "llm_audit.redaction.cache.result", "llm_audit.prompt.variables",
    "llm_audit.review.interrupt.id", "llm_audit.review.response", "llm_audit.run.id", "llm_audit.graph.node",
    "llm_audit.graph.step", "llm_audit.checkpoint.thread_id", "llm_audit.checkpoint.ns", "llm_audit.checkpoint.id",
    "llm_audit.link.type", "llm_audit.delegation.source", "llm_audit.delegation.target",
    "llm_audit.delegation.kind", "llm_audit.delegation.input", "llm_audit.delegation.output",
    "llm_audit.decision.point", "llm_audit.decision.chosen", "llm_audit.decision.options",
    "llm_audit.decision.reasoning", "llm_audit.interrupt.id", "llm_audit.interrupt.value",
}  # fmt: skip


# --------------------------------------------------------------------------- (a) drift


def test_generated_files_match_the_yaml() -> None:
    stale = gen.stale_outputs(ROOT)
    assert stale == [], f"stale: {stale}; run `python scripts/generate_semconv.py`"
    assert gen.main(["--check"]) == 0


def test_generation_is_deterministic() -> None:
    first = gen.expected_outputs(ROOT)
    assert gen.expected_outputs(ROOT) == first
    module_text = first[gen.MODULE_PATH]
    assert module_text.startswith(f"# {gen.HEADER}\n")
    assert first[gen.DOCS_PATH].startswith(f"<!-- {gen.HEADER} -->\n")


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """A throwaway copy of the registry and the generated files, to edit without touching the repo."""
    shutil.copytree(SEMCONV_DIR, tmp_path / "semconv")
    for rel in (gen.MODULE_PATH, gen.DOCS_PATH):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    return tmp_path


def test_check_fails_when_yaml_changes_without_regenerating(
    repo_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    yaml_path = repo_copy / "semconv" / "llm_audit.yaml"
    text = yaml_path.read_text(encoding="utf-8")
    yaml_path.write_text(text.replace("id: llm_audit.team\n", "id: llm_audit.team_name\n"), encoding="utf-8")
    # the metric.llm_audit.cost and span refs now dangle; fix them the way an editor would
    for path in (repo_copy / "semconv").glob("*.yaml"):
        path.write_text(
            path.read_text(encoding="utf-8").replace("ref: llm_audit.team\n", "ref: llm_audit.team_name\n"),
            encoding="utf-8",
        )

    assert gen.stale_outputs(repo_copy) == [gen.MODULE_PATH, gen.DOCS_PATH]
    assert gen.main(["--check", "--root", str(repo_copy)]) == 1
    err = capsys.readouterr().err
    assert "src/otel_llm_audit/semconv.py" in err and "docs/semconv.md" in err
    assert "run `python scripts/generate_semconv.py`" in err

    assert gen.main(["--root", str(repo_copy)]) == 0
    assert gen.stale_outputs(repo_copy) == []
    module_text = (repo_copy / gen.MODULE_PATH).read_text(encoding="utf-8")
    assert 'LLM_AUDIT_TEAM_NAME: Final = "llm_audit.team_name"' in module_text
    assert "LLM_AUDIT_TEAM:" not in module_text


def test_check_fails_when_a_generated_file_is_hand_edited(repo_copy: Path) -> None:
    module_path = repo_copy / gen.MODULE_PATH
    module_path.write_text(module_path.read_text(encoding="utf-8") + "EXTRA = 1\n", encoding="utf-8")
    assert gen.stale_outputs(repo_copy) == [gen.MODULE_PATH]
    assert gen.main(["--check", "--root", str(repo_copy)]) == 1


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "ref: llm_audit.policy.name\n",
            "ref: llm_audit.policy.nme\n",
            "ref llm_audit.policy.nme is not defined",
        ),
        ("examples: ['2026-08-01']", "examples: [2026-08-01]", "is not a string"),
        ("id: llm_audit.team\n", "id: team\n", "our keys must start with 'llm_audit.'"),
        ("        type: boolean\n        brief: Whether any", "        brief: Whether any", "missing type"),
    ],
)
def test_registry_rules_are_enforced(
    repo_copy: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, message: str
) -> None:
    for path in (repo_copy / "semconv").glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        if old in text:
            path.write_text(text.replace(old, new, 1), encoding="utf-8")
            break
    else:
        pytest.fail(f"{old!r} not found in the registry")
    with pytest.raises(gen.RegistryError, match=re.escape(message)):
        gen.load_registry(repo_copy / "semconv")
    assert gen.main(["--check", "--root", str(repo_copy)]) == 2
    assert message in capsys.readouterr().err


# --------------------------------------------------------------------------- (b) registry rules


def test_every_attribute_definition_has_type_brief_stability_examples() -> None:
    seen = 0
    for group in _raw_groups():
        for attr in group.get("attributes") or []:
            if "id" not in attr:
                continue
            seen += 1
            for field in ("type", "brief", "stability", "requirement_level", "examples"):
                assert attr.get(field) not in (None, "", []), f"{attr['id']} has no {field}"
            if not group.get("x-upstream"):
                assert attr.get("note"), f"{attr['id']} needs a note saying why it exists"
    assert seen == len(UPSTREAM_KEYS) + len(OWN_KEYS)


def test_every_group_has_id_type_brief_stability() -> None:
    for group in _raw_groups():
        for field in ("id", "type", "brief", "stability"):
            assert group.get(field), f"group {group.get('id')} has no {field}"
        assert group["type"] in ("attribute_group", "span", "event", "metric")


def test_namespaces_upstream_versus_ours() -> None:
    registry = gen.load_registry(SEMCONV_DIR)
    ours = {k for k, a in registry.attributes.items() if not a.upstream}
    upstream = {k for k, a in registry.attributes.items() if a.upstream}
    assert ours == OWN_KEYS
    assert upstream == UPSTREAM_KEYS
    assert all(k.startswith("llm_audit.") for k in ours)
    assert not any(k.startswith("llm_audit") for k in upstream)


def test_version_pin() -> None:
    main = yaml.safe_load((SEMCONV_DIR / "registry.yaml").read_text(encoding="utf-8"))
    assert main["x-llm-audit"] == {
        "genai_semconv_version": "1.42.0-dev",
        "core_semconv_version": "1.44.0",
        "schema_url": "https://opentelemetry.io/schemas/gen-ai-dev/1.42.0-dev",
    }


def test_spans_events_and_metrics() -> None:
    registry = gen.load_registry(SEMCONV_DIR)
    spans = {g.id: g for g in registry.groups if g.type == "span"}
    assert set(spans) == {
        "span.gen_ai.inference.client",
        "span.gen_ai.embeddings.client",
        "span.gen_ai.fetch_response.client",
    }
    for span in spans.values():
        levels = {r.key: r.requirement for r in span.refs}
        assert levels["gen_ai.operation.name"] == "required"
        assert levels["gen_ai.provider.name"] == "required"
        assert span.extends == "attributes.llm_audit.span.common"
    assert {r.key: r.requirement for r in spans["span.gen_ai.fetch_response.client"].refs}[
        "gen_ai.response.id"
    ] == "required"
    common = {r.key: r.requirement for r in registry.group("attributes.llm_audit.span.common").refs}
    assert common["llm_audit.sdk.version"] == "required"
    assert common["llm_audit.content.mode"] == "required"

    events = {g.event_name: g for g in registry.groups if g.type == "event"}
    assert set(events) == {
        "llm_audit.policy",
        "llm_audit.human_review",
        "llm_audit.delegation",
        "llm_audit.decision",
        "llm_audit.interrupt",
    }
    assert [r.key for r in events["llm_audit.delegation"].refs if r.requirement == "required"] == [
        "llm_audit.delegation.source",
        "llm_audit.delegation.target",
    ]
    assert [r.key for r in events["llm_audit.decision"].refs if r.requirement == "required"] == [
        "llm_audit.decision.point",
        "llm_audit.decision.chosen",
    ]
    assert [r.key for r in events["llm_audit.interrupt"].refs if r.requirement == "required"] == [
        "llm_audit.interrupt.id"
    ]
    assert [r.key for r in events["llm_audit.policy"].refs if r.requirement == "required"] == [
        "llm_audit.policy.category",
        "llm_audit.policy.action",
    ]
    assert [r.key for r in events["llm_audit.human_review"].refs if r.requirement == "required"] == [
        "llm_audit.review.subject",
        "llm_audit.review.action",
    ]

    metrics = {g.metric_name: g for g in registry.groups if g.type == "metric"}
    assert {m: (g.instrument, g.unit) for m, g in metrics.items()} == {
        "gen_ai.client.token.usage": ("histogram", "{token}"),
        "gen_ai.client.operation.duration": ("histogram", "s"),
        "gen_ai.client.operation.time_to_first_chunk": ("histogram", "s"),
        "llm_audit.cost": ("counter", "USD"),
        "llm_audit.budget.utilization": ("gauge", "1"),
        "llm_audit.instrumentation.errors": ("counter", "{error}"),
        "llm_audit.redaction.spans": ("counter", "{span}"),
        "llm_audit.redaction.cache.lookups": ("counter", "{text}"),
        "mcp.client.operation.duration": ("histogram", "s"),
        "mcp.server.operation.duration": ("histogram", "s"),
    }
    assert [r.key for r in metrics["llm_audit.cost"].refs] == [
        "llm_audit.team",
        "llm_audit.application",
        "llm_audit.tenant.id",
        "gen_ai.provider.name",
        "gen_ai.request.model",
    ]
    assert [r.key for r in metrics["llm_audit.instrumentation.errors"].refs] == ["llm_audit.error.component"]


# --------------------------------------------------------------------------- (c) constants


def test_exact_attribute_constants() -> None:
    assert semconv.GEN_AI_USAGE_INPUT_TOKENS == "gen_ai.usage.input_tokens"
    assert semconv.GEN_AI_REQUEST_MODEL == "gen_ai.request.model"
    assert semconv.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS == "gen_ai.usage.cache_write.input_tokens"
    assert semconv.GEN_AI_REQUEST_PREVIOUS_RESPONSE_ID == "gen_ai.request.previous_response.id"
    assert semconv.LLM_AUDIT_COST_USD == "llm_audit.cost.usd"
    assert semconv.LLM_AUDIT_CONTENT_HASHES == "llm_audit.content.hashes"
    assert semconv.LLM_AUDIT_ERROR_COMPONENT == "llm_audit.error.component"
    assert semconv.USER_ID == "user.id"
    assert semconv.ERROR_TYPE == "error.type"
    assert semconv.SERVER_ADDRESS == "server.address"
    assert semconv.OPENAI_RESPONSE_SYSTEM_FINGERPRINT == "openai.response.system_fingerprint"


def test_every_key_has_its_constant_and_the_key_sets() -> None:
    for key in UPSTREAM_KEYS | OWN_KEYS:
        assert getattr(semconv, key.upper().replace(".", "_")) == key
    assert frozenset(UPSTREAM_KEYS | OWN_KEYS) == semconv.ALL_ATTRIBUTE_KEYS
    assert frozenset(OWN_KEYS) == semconv.LLM_AUDIT_ATTRIBUTE_KEYS


def test_enum_value_classes() -> None:
    assert semconv.GenAiOperationNameValues.CHAT == "chat"
    assert semconv.GenAiOperationNameValues.FETCH_RESPONSE == "fetch_response"
    assert semconv.GenAiProviderNameValues.AWS_BEDROCK == "aws.bedrock"
    assert semconv.GenAiProviderNameValues.GCP_VERTEX_AI == "gcp.vertex_ai"
    assert semconv.LlmAuditActorTypeValues.AGENT == "agent"
    assert semconv.LlmAuditContentModeValues.NONE == "none"
    assert semconv.LlmAuditContentModeValues.HASH == "hash"
    assert semconv.LlmAuditPolicyActionValues.OVERRIDDEN == "overridden"
    assert semconv.LlmAuditRedactionStatusValues.FAILED == "failed"
    members = {k: v for k, v in vars(semconv.LlmAuditPolicyActionValues).items() if k.isupper()}
    assert sorted(members.values()) == sorted(
        ["blocked", "flagged", "redacted", "refused", "masked", "allowed", "overridden", "escalated"]
    )


def test_event_metric_and_version_constants() -> None:
    assert semconv.EVENT_LLM_AUDIT_POLICY == "llm_audit.policy"
    assert semconv.METRIC_GEN_AI_CLIENT_TOKEN_USAGE == "gen_ai.client.token.usage"
    assert semconv.METRIC_GEN_AI_CLIENT_TOKEN_USAGE_UNIT == "{token}"
    assert semconv.METRIC_GEN_AI_CLIENT_TOKEN_USAGE_BUCKETS == (
        1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0,
        1048576.0, 4194304.0, 16777216.0, 67108864.0,
    )  # fmt: skip
    duration_buckets = (
        0.01,
        0.02,
        0.04,
        0.08,
        0.16,
        0.32,
        0.64,
        1.28,
        2.56,
        5.12,
        10.24,
        20.48,
        40.96,
        81.92,
    )
    assert duration_buckets == semconv.METRIC_GEN_AI_CLIENT_OPERATION_DURATION_BUCKETS
    assert duration_buckets == semconv.METRIC_GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK_BUCKETS
    assert semconv.METRIC_GEN_AI_CLIENT_OPERATION_DURATION_UNIT == "s"
    assert semconv.METRIC_LLM_AUDIT_COST == "llm_audit.cost"
    assert semconv.METRIC_LLM_AUDIT_COST_UNIT == "USD"
    assert semconv.METRIC_LLM_AUDIT_INSTRUMENTATION_ERRORS == "llm_audit.instrumentation.errors"
    assert semconv.METRIC_LLM_AUDIT_INSTRUMENTATION_ERRORS_UNIT == "{error}"
    assert not hasattr(semconv, "METRIC_LLM_AUDIT_COST_BUCKETS")
    assert semconv.GENAI_SEMCONV_VERSION == "1.42.0-dev"
    assert semconv.CORE_SEMCONV_VERSION == "1.44.0"
    assert semconv.SCHEMA_URL == "https://opentelemetry.io/schemas/gen-ai-dev/1.42.0-dev"


def test_docs_list_every_key_and_the_buckets() -> None:
    docs = (ROOT / gen.DOCS_PATH).read_text(encoding="utf-8")
    for key in UPSTREAM_KEYS | OWN_KEYS:
        assert f"| `{key}` |" in docs
    assert "Bucket boundaries: 1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576," in docs
    assert "### `llm_audit.policy` (`EVENT_LLM_AUDIT_POLICY`)" in docs
