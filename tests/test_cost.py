"""The shipped price table and the cost calculator."""

from __future__ import annotations

import json
import math
import os
import threading
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from otel_llm_audit.processing import cost as cost_module
from otel_llm_audit.processing.cost import (
    PRICES_ENV,
    Cost,
    ModelPrice,
    PriceTable,
    PriceTableError,
    default_price_table,
)

SHIPPED_VERSION = "2026-11-26.1"


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.load()


def _write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def _one_model(name: str, prices: str, provider: str = "openai") -> str:
    return f"providers:\n  {provider}:\n    models:\n      {name}: {prices}\n"


# --------------------------------------------------------------------------- arithmetic


def test_plain_call(table: PriceTable) -> None:
    # gpt-4o: $2.50 in, $10 out per million.
    got = table.cost("openai", "gpt-4o", input_tokens=1000, output_tokens=500)
    assert got == Cost(total_usd=0.0075, input_usd=0.0025, output_usd=0.005)


def test_cached_input_is_part_of_input_tokens(table: PriceTable) -> None:
    # 1000 input of which 400 cache reads: 600 x 2.50 + 400 x 1.25, then 100 x 10.
    got = table.cost("openai", "gpt-4o", input_tokens=1000, output_tokens=100, cache_read_tokens=400)
    assert got == Cost(total_usd=0.003, input_usd=0.002, output_usd=0.001)


def test_cache_reads_and_writes_at_their_own_rates(table: PriceTable) -> None:
    # claude-sonnet-4-5: input 3, 5m cache write 3.75, cache hit 0.30, output 15.
    # 10_000 input = 2_000 uncached + 6_000 read + 2_000 written.
    got = table.cost(
        "anthropic",
        "claude-sonnet-4-5-20250929",
        input_tokens=10_000,
        output_tokens=1_000,
        cache_read_tokens=6_000,
        cache_write_tokens=2_000,
    )
    assert got == Cost(total_usd=0.0303, input_usd=0.0153, output_usd=0.015)


def test_cache_tokens_without_a_cache_rate_cost_plain_input(tmp_path: Path) -> None:
    override = _write(tmp_path / "flat.yaml", _one_model("flat-1", "{input: 2, output: 4}"))
    table = PriceTable.load(override)
    got = table.cost(
        "openai",
        "flat-1",
        input_tokens=1000,
        output_tokens=0,
        cache_read_tokens=300,
        cache_write_tokens=200,
    )
    assert got == Cost(total_usd=0.002, input_usd=0.002, output_usd=0.0)


def test_reasoning_tokens_default_to_output_rate(table: PriceTable) -> None:
    # o3: 2 in, 8 out; 3000 output of which 2500 reasoning, all at 8.
    got = table.cost("openai", "o3", input_tokens=2000, output_tokens=3000, reasoning_tokens=2500)
    assert got == Cost(total_usd=0.028, input_usd=0.004, output_usd=0.024)


def test_reasoning_tokens_at_their_own_rate(tmp_path: Path) -> None:
    override = _write(tmp_path / "think.yaml", _one_model("thinker-1", "{input: 1, output: 4, reasoning: 2}"))
    table = PriceTable.load(override)
    # 1000 output = 400 visible x 4 + 600 reasoning x 2.
    got = table.cost("openai", "thinker-1", input_tokens=0, output_tokens=1000, reasoning_tokens=600)
    assert got == Cost(total_usd=0.0028, input_usd=0.0, output_usd=0.0028)


@pytest.mark.parametrize(
    ("provider", "model"), [("gcp.gemini", "gemini-2.5-pro"), ("gcp.vertex_ai", "gemini-2.5-pro-001")]
)
def test_gemini_call_with_cached_content_and_thoughts(table: PriceTable, provider: str, model: str) -> None:
    """Google's usageMetadata through the capture module's conversion, then priced.

    promptTokenCount (10_000) already includes cachedContentTokenCount (6_000); thoughts (3_000)
    are counted apart from candidatesTokenCount (1_000) and billed as output. gemini-2.5-pro:
    input 1.25, cache hit 0.125, output 10 per million.
    """
    from otel_llm_audit.instrumentation.google_genai._capture import usage_of

    usage = usage_of(
        {
            "promptTokenCount": 10_000,
            "cachedContentTokenCount": 6_000,
            "candidatesTokenCount": 1_000,
            "thoughtsTokenCount": 3_000,
            "totalTokenCount": 14_000,
        }
    )
    assert (usage.input_tokens, usage.cache_read_input_tokens) == (10_000, 6_000)
    assert (usage.output_tokens, usage.reasoning_output_tokens) == (4_000, 3_000)
    got = table.cost(
        provider,
        model,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_input_tokens,
        reasoning_tokens=usage.reasoning_output_tokens,
    )
    # 4_000 x 1.25 + 6_000 x 0.125 = 5_750; 4_000 x 10 = 40_000 (per million).
    assert got == Cost(total_usd=0.04575, input_usd=0.00575, output_usd=0.04)


def test_inconsistent_counts_never_go_negative(table: PriceTable) -> None:
    # Cache reads larger than the input count: uncached part is 0, reads still charged (1.25).
    got = table.cost("openai", "gpt-4o", input_tokens=100, output_tokens=10, cache_read_tokens=400)
    assert got == Cost(total_usd=0.0006, input_usd=0.0005, output_usd=0.0001)
    got = table.cost("openai", "gpt-4o", input_tokens=-5, output_tokens=-5)
    assert got == Cost(total_usd=0.0, input_usd=0.0, output_usd=0.0)


def test_missing_side_counts_as_zero_but_no_usage_is_no_cost(table: PriceTable) -> None:
    got = table.cost("openai", "text-embedding-3-small", input_tokens=1_000_000, output_tokens=None)
    assert got == Cost(total_usd=0.02, input_usd=0.02, output_usd=0.0)
    assert table.cost("openai", "gpt-4o", input_tokens=None, output_tokens=None) is None


def test_rounded_to_ten_places(table: PriceTable) -> None:
    # 7 x 0.15 / 1e6 = 1.05e-06 exactly after rounding, whatever the float noise.
    got = table.cost("openai", "gpt-4o-mini", input_tokens=7, output_tokens=3)
    assert got == Cost(total_usd=0.0000028500, input_usd=0.00000105, output_usd=0.0000018)
    assert got is not None and got.total_usd == round(got.total_usd, 10)


# --------------------------------------------------------------------------- model lookup


@pytest.mark.parametrize(
    ("provider", "model", "base"),
    [
        ("openai", "gpt-4o-2024-08-06", "gpt-4o"),
        ("openai", "gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
        ("openai", "GPT-5-2025-08-07", "gpt-5"),
        ("openai", "o3-pro-2025-06-10", "o3-pro"),
        ("anthropic", "claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("anthropic", "claude-sonnet-4-0", "claude-sonnet-4"),  # alias
        ("anthropic", "claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
        ("anthropic", "claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("aws.bedrock", "anthropic.claude-3-5-haiku-20241022-v1:0", "anthropic.claude-3-5-haiku"),
        ("aws.bedrock", "us.anthropic.claude-3-7-sonnet-20250219-v1:0", "anthropic.claude-3-7-sonnet"),
        (
            "aws.bedrock",
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "global.anthropic.claude-sonnet-4-5",
        ),
        ("gcp.gemini", "gemini-2.5-flash-001", "gemini-2.5-flash"),
        ("gcp.gemini", "models/gemini-2.5-pro", "gemini-2.5-pro"),
        ("gcp.vertex_ai", "gemini-2.5-pro-preview-06-05", "gemini-2.5-pro"),
    ],
)
def test_dated_snapshots_resolve_to_the_base_model(
    table: PriceTable, provider: str, model: str, base: str
) -> None:
    expected = table.price_for(provider, base)
    assert expected is not None
    assert table.price_for(provider, model) == expected


def test_snapshot_with_its_own_price_wins_over_the_base(table: PriceTable) -> None:
    assert table.price_for("openai", "gpt-4o-2024-05-13") == ModelPrice(5.0, 15.0, None, None, None)
    assert table.price_for("openai", "gpt-4o-2024-11-20") == table.price_for("openai", "gpt-4o")


def test_bedrock_regional_endpoints_cost_ten_percent_more_from_4_5_on(table: PriceTable) -> None:
    regional = table.price_for("aws.bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0")
    global_ = table.price_for("aws.bedrock", "global.anthropic.claude-sonnet-4-5-20250929-v1:0")
    assert regional == ModelPrice(input=3.3, output=16.5, cached_input=0.33, cache_write=4.125)
    assert global_ == table.price_for("anthropic", "claude-sonnet-4-5")


def test_prefix_rule_picks_the_longest_registered_name(table: PriceTable) -> None:
    mini = table.price_for("openai", "gpt-4o-mini")
    assert mini is not None and mini.input == 0.15
    assert table.price_for("openai", "gpt-4o-mini-2024-07-18") == mini
    assert table.price_for("openai", "gpt-4o-mini-search-preview") == mini
    assert table.price_for("openai", "gpt-4o-search-preview") == table.price_for("openai", "gpt-4o")
    assert table.price_for("openai", "gpt-5-codex") == table.price_for("openai", "gpt-5")


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "gpt-5.1-codex-mini"),  # a cheaper tier of gpt-5.1, not gpt-5.1
        ("openai", "o3-deep-research"),  # priced differently from o3
        ("openai", "gpt-4o-realtime-preview"),  # audio tokens
        ("openai", "gpt-4o-mini-tts"),
        ("openai", "gpt-5.7"),  # a new version is not gpt-5
        ("anthropic", "claude-opus-4-9"),  # not claude-opus-4 at $15/$75
        ("aws.bedrock", "us.anthropic.claude-sonnet-4-6"),  # not claude-sonnet-4
        ("gcp.gemini", "gemini-2.5-flash-image"),
    ],
)
def test_prefix_rule_refuses_other_versions_and_tiers(table: PriceTable, provider: str, model: str) -> None:
    assert table.price_for(provider, model) is None


def test_unknown_model_or_provider_has_no_cost(table: PriceTable) -> None:
    assert table.price_for("openai", "my-fine-tune") is None
    assert table.cost("openai", "my-fine-tune", input_tokens=10, output_tokens=10) is None
    assert table.cost("no.such.provider", "gpt-4o", input_tokens=10, output_tokens=10) is None
    assert table.price_for("openai", "") is None


def test_azure_inherits_openai(table: PriceTable) -> None:
    assert table.price_for("azure.ai.openai", "gpt-4.1-2025-04-14") == table.price_for("openai", "gpt-4.1")
    assert table.price_for("gcp.vertex_ai", "gemini-2.5-flash") == table.price_for(
        "gcp.gemini", "gemini-2.5-flash"
    )


def test_lookup_is_memoised(table: PriceTable) -> None:
    first = table.price_for("openai", "gpt-4o-2024-08-06")
    assert table.price_for("openai", "gpt-4o-2024-08-06") is first


# --------------------------------------------------------------------------- overrides


def test_override_adds_a_model_and_replaces_a_price(tmp_path: Path) -> None:
    override = _write(
        tmp_path / "negotiated.yaml",
        "providers:\n"
        "  openai:\n"
        "    models:\n"
        "      acme-large: {input: 1.0, output: 2.0, aliases: [acme-l]}\n"
        "      gpt-4o: {input: 2.0, output: 8.0}\n",
    )
    table = PriceTable.load(override)
    assert table.version == f"{SHIPPED_VERSION}+negotiated"
    assert table.effective_date == "2026-11-26"
    assert table.price_for("openai", "acme-l") == ModelPrice(1.0, 2.0)
    # Replaced whole: no cached_input any more, and snapshots and Azure see the new price.
    assert table.price_for("openai", "gpt-4o-2024-08-06") == ModelPrice(2.0, 8.0)
    assert table.price_for("azure.ai.openai", "gpt-4o") == ModelPrice(2.0, 8.0)
    assert table.cost("openai", "acme-large", input_tokens=1_000_000, output_tokens=1_000_000) == Cost(
        3.0, 1.0, 2.0
    )
    # Untouched models keep the shipped price.
    assert table.price_for("openai", "gpt-4o-mini") == PriceTable.load().price_for("openai", "gpt-4o-mini")


def test_override_version_key_and_json_and_order(tmp_path: Path) -> None:
    first = _write(
        tmp_path / "a.json",
        json.dumps(
            {
                "version": "corp-7",
                "effective_date": "2026-12-01",
                "providers": {"mistral_ai": {"models": {"mistral-x": {"input": 1, "output": 3}}}},
            }
        ),
    )
    second = _write(
        tmp_path / "b.yaml",
        "providers:\n  mistral_ai:\n    models:\n      mistral-x: {input: 0.5, output: 1.5}\n",
    )
    table = PriceTable.load(first, Path(second))
    assert table.version == f"{SHIPPED_VERSION}+corp-7+b"
    assert table.effective_date == "2026-12-01"
    assert table.price_for("mistral_ai", "mistral-x") == ModelPrice(0.5, 1.5)


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("broken.yaml", "providers: [unclosed\n", "not valid YAML"),
        ("broken.json", '{"providers": ', "not valid JSON"),
        ("empty.yaml", "", "expected a mapping"),
        ("list.yaml", "- a\n- b\n", "expected a mapping"),
        ("noprov.yaml", "version: x\n", "'providers'"),
        ("negative.yaml", "providers:\n  openai:\n    models:\n      m: {input: -1, output: 1}\n", ">= 0"),
        ("text.yaml", "providers:\n  openai:\n    models:\n      m: {input: cheap, output: 1}\n", "number"),
        ("nooutput.yaml", "providers:\n  openai:\n    models:\n      m: {input: 1}\n", "'output'"),
        (
            "typo.yaml",
            "providers:\n  openai:\n    models:\n      m: {input: 1, output: 1, cached_inpt: 0.1}\n",
            "cached_inpt",
        ),
        ("currency.yaml", "currency: EUR\nproviders:\n  openai:\n    models: {}\n", "currency"),
        ("inherits.yaml", "providers:\n  my.proxy:\n    inherits: nobody\n", "unknown provider 'nobody'"),
        (
            "cycle.yaml",
            "providers:\n  a.x:\n    inherits: b.x\n  b.x:\n    inherits: a.x\n",
            "cycle",
        ),
    ],
)
def test_malformed_override_names_the_file(tmp_path: Path, name: str, text: str, reason: str) -> None:
    path = _write(tmp_path / name, text)
    with pytest.raises(PriceTableError) as info:
        PriceTable.load(path)
    assert info.value.path == path
    assert path in str(info.value)
    assert reason in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_override_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(PriceTableError, match=r"nope\.yaml: price file not found"):
        PriceTable.load(missing)


# --------------------------------------------------------------------------- default table


@pytest.fixture
def fresh_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cost_module, "_default", None)


@pytest.mark.usefixtures("fresh_default")
def test_default_table_honours_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    one = _write(tmp_path / "one.yaml", _one_model("m1", "{input: 1, output: 1}"))
    two = _write(tmp_path / "two.yaml", _one_model("m2", "{input: 2, output: 2}"))
    monkeypatch.setenv(PRICES_ENV, os.pathsep.join([one, "", two]))
    table = default_price_table()
    assert table.version == f"{SHIPPED_VERSION}+one+two"
    assert table.price_for("openai", "m1") == ModelPrice(1.0, 1.0)
    assert table.price_for("openai", "m2") == ModelPrice(2.0, 2.0)
    assert default_price_table() is table  # loaded once

    monkeypatch.delenv(PRICES_ENV)
    plain = default_price_table()
    assert plain.version == SHIPPED_VERSION
    assert plain.price_for("openai", "m1") is None


@pytest.mark.usefixtures("fresh_default")
def test_default_table_is_loaded_once_across_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PRICES_ENV, raising=False)
    loads = 0
    real_load = PriceTable.load.__func__  # type: ignore[attr-defined]

    def counting_load(cls: type[PriceTable], *paths: Any) -> PriceTable:
        nonlocal loads
        loads += 1
        result: PriceTable = real_load(cls, *paths)
        return result

    monkeypatch.setattr(PriceTable, "load", classmethod(counting_load))
    barrier = threading.Barrier(8)
    seen: list[PriceTable] = []

    def worker() -> None:
        barrier.wait()
        seen.append(default_price_table())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert loads == 1
    assert len(seen) == 8 and all(t is seen[0] for t in seen)


@pytest.mark.usefixtures("fresh_default")
def test_default_table_with_a_bad_file_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PRICES_ENV, str(tmp_path / "missing.yaml"))
    with pytest.raises(PriceTableError, match=r"missing\.yaml"):
        default_price_table()


# --------------------------------------------------------------------------- shipped table


def _shipped() -> dict[str, Any]:
    text = resources.files("otel_llm_audit.processing").joinpath("prices.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def test_shipped_table_header() -> None:
    data = _shipped()
    assert data["version"] == SHIPPED_VERSION
    assert data["effective_date"] == "2026-11-26"
    assert data["currency"] == "USD"
    assert data["unit"] == "per_million_tokens"
    assert PriceTable.load().version == SHIPPED_VERSION


def test_every_shipped_model_has_sane_prices() -> None:
    providers = _shipped()["providers"]
    assert {"openai", "azure.ai.openai", "anthropic", "aws.bedrock", "gcp.gemini", "gcp.vertex_ai"} <= set(
        providers
    )
    assert providers["azure.ai.openai"] == {"inherits": "openai"}
    count = 0
    for provider, spec in providers.items():
        for model, price in (spec.get("models") or {}).items():
            count += 1
            where = f"{provider}/{model}"
            for key in ("input", "output"):
                value = price[key]
                assert isinstance(value, (int, float)) and not isinstance(value, bool), where
                assert math.isfinite(value) and value >= 0, where
            for key in ("cached_input", "cache_write", "reasoning"):
                if key in price:
                    assert price[key] >= 0, where
            if "cached_input" in price:
                assert price["cached_input"] <= price["input"], f"{where}: cache reads cost more than input"
    assert count >= 60


def test_every_shipped_name_resolves_to_itself(table: PriceTable) -> None:
    for provider, spec in _shipped()["providers"].items():
        for model, price in (spec.get("models") or {}).items():
            expected = ModelPrice(
                float(price["input"]),
                float(price["output"]),
                price.get("cached_input"),
                price.get("cache_write"),
                price.get("reasoning"),
            )
            assert table.price_for(provider, model) == expected, f"{provider}/{model}"
            for alias in price.get("aliases", []):
                assert table.price_for(provider, alias) == expected, f"{provider}/{alias}"


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", m)
        for m in (
            "gpt-5",
            "gpt-5-mini",
            "gpt-5-nano",
            "gpt-4.1",
            "gpt-4.1-mini",
            "gpt-4.1-nano",
            "gpt-4o",
            "gpt-4o-mini",
            "o3",
            "o3-mini",
            "o4-mini",
            "o1",
            "text-embedding-3-small",
            "text-embedding-3-large",
            "text-embedding-ada-002",
        )
    ]
    + [
        ("anthropic", m)
        for m in (
            "claude-opus-4-1-20250805",
            "claude-opus-4-20250514",
            "claude-sonnet-4-5-20250929",
            "claude-sonnet-4-20250514",
            "claude-haiku-4-5-20251001",
            "claude-3-7-sonnet-20250219",
            "claude-3-5-haiku-20241022",
        )
    ]
    + [
        ("gcp.gemini", m)
        for m in ("gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-embedding-001")
    ],
)
def test_required_models_are_priced(table: PriceTable, provider: str, model: str) -> None:
    assert table.price_for(provider, model) is not None
