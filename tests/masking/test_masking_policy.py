"""Masking policy: YAML loading, layering, validation, versioning, and what each setting does."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from otel_llm_audit.processing.masking import MaskingConfigError, MaskingPolicy


def write(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# loading (no presidio needed)


def test_default_policy_excludes_timestamp_and_id_recognizers() -> None:
    policy = MaskingPolicy.load()
    assert {"DATE_TIME", "URL", "UUID"}.isdisjoint(policy.entities)
    for entity in ("EMAIL_ADDRESS", "CREDIT_CARD", "US_SSN", "PHONE_NUMBER", "IBAN_CODE", "IP_ADDRESS"):
        assert entity in policy.entities
    for entity in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AWS_ACCESS_KEY_ID", "GITHUB_TOKEN", "JWT", "BEARER_TOKEN"):
        assert entity in policy.entities
    assert "MEDICAL_RECORD_NUMBER" in policy.entities
    assert policy.replacement == "type"
    assert re.fullmatch(r"mp1-[0-9a-f]{16}", policy.version)
    assert policy.profile == "default"


def test_version_is_a_hash_of_the_effective_policy(tmp_path: Path) -> None:
    default = MaskingPolicy.load()
    assert MaskingPolicy.load().version == default.version
    # The same effective policy from a file that restates a default has the same version...
    same = MaskingPolicy.load(write(tmp_path, "default_threshold: 0.4\n"))
    assert same.version == default.version
    assert same.source.endswith("policy.yaml")
    # ...and any change of rules changes it.
    assert MaskingPolicy.load(thresholds={"PHONE_NUMBER": 0.5}).version != default.version
    assert MaskingPolicy.load(allow_list=["x"]).version != default.version


def test_user_file_layers_over_the_default(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        add_entities: [URL]
        remove_entities: [CRYPTO]
        thresholds: {PHONE_NUMBER: 0.7}
        context_words:
          US_SSN: [ssn, tax number]
        allow_list: [support@acme.example]
        extra_attribute_keys: [app.customer.note]
        """,
    )
    policy = MaskingPolicy.load(path)
    assert "URL" in policy.entities and "CRYPTO" not in policy.entities
    assert "EMAIL_ADDRESS" in policy.entities  # kept from the default
    assert policy.threshold_for("PHONE_NUMBER") == 0.7
    assert policy.threshold_for("EMAIL_ADDRESS") == 0.4
    assert policy.context_words["US_SSN"] == ("ssn", "tax number")
    assert "PHONE_NUMBER" in policy.context_words  # other entries of the mapping kept
    assert policy.allow_list == ("support@acme.example",)
    assert policy.extra_attribute_keys == ("app.customer.note",)


def test_overrides_win_over_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "replacement: type\n")
    assert MaskingPolicy.load(path, replacement="pseudonym").replacement == "pseudonym"


def test_health_profile_from_file(tmp_path: Path) -> None:
    policy = MaskingPolicy.load(write(tmp_path, "profile: health\n"))
    assert policy.profile == "health"
    assert "DATE_TIME" in policy.entities


def test_deny_list_and_custom_recognizers_parsed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        r"""
        deny_list:
          - Project Nightingale
          - {regex: "\\bACME-\\d{4}\\b", entity: INTERNAL_PROJECT}
          - {literal: "Dr. Q", entity: PERSON}
        custom_recognizers:
          - name: employee_id
            entity: EMPLOYEE_ID
            regex: "\\bEMP-\\d{6}\\b"
            score: 0.3
            context: [Employee, staff]
        """,
    )
    policy = MaskingPolicy.load(path)
    assert [(r.pattern, r.is_regex, r.entity) for r in policy.deny_list] == [
        ("Project Nightingale", False, "DENY_LIST"),
        (r"\bACME-\d{4}\b", True, "INTERNAL_PROJECT"),
        ("Dr. Q", False, "PERSON"),
    ]
    (custom,) = policy.custom_recognizers
    assert (custom.name, custom.entity, custom.score) == ("employee_id", "EMPLOYEE_ID", 0.3)
    assert custom.context == ("employee", "staff")


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("entities: [EMAIL_ADDRESS\n", "not valid YAML"),
        ("- just\n- a list\n", "must be a mapping"),
        ("entitys: [EMAIL_ADDRESS]\n", "unknown masking policy key"),
        ("thresholds: {PHONE_NUMBER: 1.5}\n", "outside [0.0, 1.0]"),
        ("thresholds: {phone: 0.5}\n", "UPPER_SNAKE_CASE"),
        ("default_threshold: high\n", "expected a number"),
        ("replacement: hash\n", "expected 'type' or 'pseudonym'"),
        ("pseudonym_key_env: 'k3y-v4lue/abc='\n", "not an environment variable name"),
        ("allow_patterns: ['(unclosed']\n", "invalid regular expression"),
        ("deny_list: [{regex: 'a', literal: 'b'}]\n", "exactly one of"),
        ("custom_recognizers: [{name: x, entity: X}]\n", "missing keys ['regex']"),
        ("custom_recognizers: [{name: x, entity: X, regex: '[', score: 0.5}]\n", "invalid regular expression"),
        ("entities: []\n", "at least one entity type"),
        ("profile: paranoid\n", "unknown profile"),
        ("pseudonym_length: 2\n", "pseudonym_length"),
    ],
)
def test_bad_policy_raises_config_error_naming_the_file(tmp_path: Path, yaml_text: str, message: str) -> None:
    path = write(tmp_path, yaml_text, name="bad_policy.yaml")
    with pytest.raises(MaskingConfigError) as info:
        MaskingPolicy.load(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_missing_file_raises_config_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(MaskingConfigError, match=r"nope\.yaml"):
        MaskingPolicy.load(path)


def test_missing_ner_model_is_a_load_error(tmp_path: Path) -> None:
    path = write(tmp_path, "ner_model: en_core_web_does_not_exist\n")
    with pytest.raises(MaskingConfigError) as info:
        MaskingPolicy.load(path)
    assert "en_core_web_does_not_exist" in str(info.value)
    assert "does not fall back" in str(info.value)
    with pytest.raises(MaskingConfigError, match="neither an installed package nor a model directory"):
        MaskingPolicy.load(ner_model=str(tmp_path / "no-such-model-dir"))


def test_policy_names_the_key_variable_and_never_holds_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "correct-horse-battery-staple-42"
    monkeypatch.setenv("OTEL_LLM_AUDIT_MASKING_KEY", secret)
    policy = MaskingPolicy.load(replacement="pseudonym")
    assert policy.pseudonym_key_env == "OTEL_LLM_AUDIT_MASKING_KEY"
    for text in (repr(policy), str(policy), str(policy.to_dict()), policy.version):
        assert secret not in text
    assert hash(policy) == hash(MaskingPolicy.load(replacement="pseudonym"))


def test_prefilter_knows_the_shipped_mrn_pattern() -> None:
    # The pre-filter's literal gate for medical record numbers is only valid for this pattern.
    from otel_llm_audit.processing.masking.prefilter import _SHIPPED_MRN_PATTERN

    assert MaskingPolicy.load().mrn_pattern == _SHIPPED_MRN_PATTERN
