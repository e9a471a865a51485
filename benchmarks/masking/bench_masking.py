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
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")  # before presidio (and tldextract) are imported
import gc
import json
import os
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

from otel_llm_audit.processing.masking import Detection, Masker, MaskingPolicy  # noqa: E402
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chats", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="300 texts, 1 round, 10 chats; print only")
    parser.add_argument("--render", metavar="JSON", help="only render the Markdown of a saved result")
    parser.add_argument("--out", default=str(RESULTS / "masking"))
    args = parser.parse_args(argv)
    if args.render:
        text = render(json.loads(Path(args.render).read_text(encoding="utf-8")))
        Path(args.render).with_suffix(".md").write_text(text, encoding="utf-8")
        print(text)
        return 0
    if args.quick:
        args.n, args.rounds, args.chats = 300, 1, 10
    result = run(args.n, args.seed, args.rounds, args.chats)
    text = render(result)
    print(text)
    if not args.quick:
        Path(args.out + ".json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        Path(args.out + ".md").write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
