"""Each entity type of the default policy is found and replaced exactly; clean values are not.

Runs presidio offline (the ``no_op`` engine, no spaCy model, no network). All values are
synthetic: card numbers are test numbers, keys are random strings of the right shape.
"""

from __future__ import annotations

import base64
import json

import pytest

pytest.importorskip("presidio_analyzer")

from otel_llm_audit.processing.masking import Masker, MaskingPolicy


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).rstrip(b"=").decode()


JWT = (
    _b64({"alg": "HS256", "typ": "JWT"})
    + "."
    + _b64({"sub": "1234567890", "name": "Jane", "iat": 1732612345})
    + ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
GITHUB_PAT = "github_pat_11ABCDEFG0123456789abc_defGHIJKLMNOPqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWX"


@pytest.fixture(scope="module")
def masker() -> Masker:
    return Masker(MaskingPolicy.load())


DETECTED = [
    # (input, exact masked output, entity counts)
    ("Email jane.doe@example.com today", "Email <EMAIL_ADDRESS> today", {"EMAIL_ADDRESS": 1}),
    # An address after a path or query separator: presidio's own pattern missed the first one.
    ("GET /api/users/jane@example.com/orders", "GET /api/users/<EMAIL_ADDRESS>/orders", {"EMAIL_ADDRESS": 1}),
    ("https://crm.example.org/c/jane@example.com", "https://crm.example.org/c/<EMAIL_ADDRESS>", {"EMAIL_ADDRESS": 1}),
    ("?email=jane@example.com&x=1", "?email=<EMAIL_ADDRESS>&x=1", {"EMAIL_ADDRESS": 1}),
    ("o'brien+news@example.ie", "<EMAIL_ADDRESS>", {"EMAIL_ADDRESS": 1}),
    ("call me at (415) 555-0143", "call me at <PHONE_NUMBER>", {"PHONE_NUMBER": 1}),
    ("reach me on +44 20 7946 0958.", "reach me on <PHONE_NUMBER>.", {"PHONE_NUMBER": 1}),
    ("my cell is 415-555-0143", "my cell is <PHONE_NUMBER>", {"PHONE_NUMBER": 1}),
    ("phone 4155550143", "phone <PHONE_NUMBER>", {"PHONE_NUMBER": 1}),
    ("card 4111 1111 1111 1111 exp 12/28", "card <CREDIT_CARD> exp 12/28", {"CREDIT_CARD": 1}),
    ("amex 3782-822463-10005 declined", "amex <CREDIT_CARD> declined", {"CREDIT_CARD": 1}),
    ("social security number: 219-09-9999", "social security number: <US_SSN>", {"US_SSN": 1}),
    ("SSN 219099999 on file", "SSN <US_SSN> on file", {"US_SSN": 1}),
    ("ssn#219 09 9999", "ssn#<US_SSN>", {"US_SSN": 1}),
    ("ITIN 912-70-1234", "ITIN <US_ITIN>", {"US_ITIN": 1}),
    ("IBAN DE89 3704 0044 0532 0130 00.", "IBAN <IBAN_CODE>.", {"IBAN_CODE": 1}),
    ("IBAN GB82WEST12345698765432", "IBAN <IBAN_CODE>", {"IBAN_CODE": 1}),
    ("login from 203.0.113.7 failed", "login from <IP_ADDRESS> failed", {"IP_ADDRESS": 1}),
    ("from 2001:db8::8a2e:370:7334 too", "from <IP_ADDRESS> too", {"IP_ADDRESS": 1}),
    ("mac 00:1a:2b:3c:4d:5e", "mac <MAC_ADDRESS>", {"MAC_ADDRESS": 1}),
    ("DEA AB1234563", "DEA <MEDICAL_LICENSE>", {"MEDICAL_LICENSE": 1}),
    ("btc 1BoatSLRHtKNngkdXEeobR76b53LETtpyT", "btc <CRYPTO>", {"CRYPTO": 1}),
    ("NHS number 401 023 2137", "NHS number <UK_NHS>", {"UK_NHS": 1}),
    ("passport 912803456", "passport <US_PASSPORT>", {"US_PASSPORT": 1}),
    ("account number 12345678", "account number <US_BANK_NUMBER>", {"US_BANK_NUMBER": 1}),
    ("driver's license D1234567", "driver's license <US_DRIVER_LICENSE>", {"US_DRIVER_LICENSE": 1}),
    # this package's recognizers
    (
        "OPENAI_API_KEY=sk-proj-Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8Qr9St0UvWxYz12 fails",
        "OPENAI_API_KEY=<OPENAI_API_KEY> fails",
        {"OPENAI_API_KEY": 1},
    ),
    ("legacy sk-Ab1Cd2Ef3Gh4Ij5Kl6MnT3BlbkFJOp8Qr9St0UvWxYz12ab", "legacy <OPENAI_API_KEY>", {"OPENAI_API_KEY": 1}),
    (
        'Anthropic(api_key="sk-ant-api03-Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8Qr9St0UvWxYz12-_AA")',
        'Anthropic(api_key="<ANTHROPIC_API_KEY>")',
        {"ANTHROPIC_API_KEY": 1},
    ),
    ("aws_access_key_id AKIAIOSFODNN7EXAMPLE", "aws_access_key_id <AWS_ACCESS_KEY_ID>", {"AWS_ACCESS_KEY_ID": 1}),
    ("session key ASIAY34FZKBOKMUTVV7A", "session key <AWS_ACCESS_KEY_ID>", {"AWS_ACCESS_KEY_ID": 1}),
    (
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "aws_secret_access_key = <AWS_SECRET_ACCESS_KEY>",
        {"AWS_SECRET_ACCESS_KEY": 1},
    ),
    ("token ghp_Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8Qr9St0UvWxYz", "token <GITHUB_TOKEN>", {"GITHUB_TOKEN": 1}),
    (
        "git clone https://ghp_Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8Qr9St0UvWxYz@github.com/acme/infra.git",
        "git clone https://<GITHUB_TOKEN>@github.com/acme/infra.git",
        {"GITHUB_TOKEN": 1},
    ),
    (f"GH_TOKEN={GITHUB_PAT}", "GH_TOKEN=<GITHUB_TOKEN>", {"GITHUB_TOKEN": 1}),
    (f"cookie session={JWT}; Path=/", "cookie session=<JWT>; Path=/", {"JWT": 1}),
    (
        "curl -H 'Authorization: Bearer abc123def456ghi789jkl' https://api.example.com",
        "curl -H 'Authorization: Bearer <BEARER_TOKEN>' https://api.example.com",
        {"BEARER_TOKEN": 1},
    ),
    (f"Authorization: Bearer {JWT}", "Authorization: Bearer <JWT>", {"JWT": 1}),
    ("MRN: 12345678, admitted", "MRN: <MEDICAL_RECORD_NUMBER>, admitted", {"MEDICAL_RECORD_NUMBER": 1}),
    ("Medical record number 1234567", "Medical record number <MEDICAL_RECORD_NUMBER>", {"MEDICAL_RECORD_NUMBER": 1}),
    (
        "Mail jane@example.com, card 4111-1111-1111-1111, SSN 219-09-9999, again jane@example.com",
        "Mail <EMAIL_ADDRESS>, card <CREDIT_CARD>, SSN <US_SSN>, again <EMAIL_ADDRESS>",
        {"EMAIL_ADDRESS": 2, "CREDIT_CARD": 1, "US_SSN": 1},
    ),
]


@pytest.mark.parametrize(("text", "expected", "counts"), DETECTED, ids=[c[0][:40] for c in DETECTED])
def test_entity_detected_and_replaced_exactly(masker: Masker, text: str, expected: str, counts: dict[str, int]) -> None:
    result = masker.mask_text(text)
    assert result.text == expected
    assert dict(result.entities) == counts
    assert result.masked


CLEAN = [
    "At 2026-11-26T10:15:30.123Z the job finished",
    "2026-11-26 10:15:30 and 11/26/2026 and Nov 26, 2026",
    "request 7f3e2a10-1c2b-4d5e-9f00-abcdef123456 returned 503",
    "trace 4bf92f3577b34da6a3ce929d0e0e4736 span 00f067aa0ba902b7",
    "traceparent 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "order 219099999 shipped",
    "order #48213, PO-2026-00042, invoice INV-88213, case 28576027",
    "ticket 3006-8833 is open",
    "upgrade v3.12.1 to 4.2.0-rc1 (Python 3.11.7, build 10.0.19045.3570)",
    "listen on 0.0.0.0:8080, localhost:5432 and 127.0.0.1, port 443",
    "the job started at epoch 1732612345",
    "total $1,234.56, margin 12.5%",
    "LDL 120 mg/dL, blood pressure (132/71), take 500 mg",
    "commit 5b8f4ce9dc798e196efe0c86ef393843046985e8",
    "request id req_bda29310179d2db16e08 on pod api-7f9c6d5b8-x2k4q",
    "HTTP 503 after 2072 ms using gpt-4o-2024-08-06",
    "image sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "use sk-learn-compatible estimators; Bearer authentication is described here",
    "https://opentelemetry.io/docs/specs/semconv/gen-ai/ explains it",
]


@pytest.mark.parametrize("text", CLEAN, ids=[c[:40] for c in CLEAN])
def test_clean_values_untouched(masker: Masker, text: str) -> None:
    result = masker.mask_text(text)
    assert result.text == text
    assert dict(result.entities) == {}
    assert not result.masked


def test_bare_nine_digits_need_ssn_context(masker: Masker) -> None:
    assert masker.mask_text("order 219099999").text == "order 219099999"
    assert masker.mask_text("SSN 219099999").text == "SSN <US_SSN>"
    assert masker.mask_text("Social Security No. 219099999").text == "Social Security No. <US_SSN>"
    # The context word must stand before the number, close to it.
    far = "SSN is a field of the form; " + "x" * 40 + " order 219099999"
    assert masker.mask_text(far).text == far


def test_bare_ten_digits_need_phone_context(masker: Masker) -> None:
    assert masker.mask_text("epoch 1732612345").text == "epoch 1732612345"
    assert masker.mask_text("mobile: 4155550143").text == "mobile: <PHONE_NUMBER>"


def test_four_part_version_is_not_an_ip(masker: Masker) -> None:
    assert masker.mask_text("release 10.0.1.4").text == "release 10.0.1.4"
    assert masker.mask_text("client 10.0.1.4").text == "client <IP_ADDRESS>"


def test_empty_text(masker: Masker) -> None:
    assert masker.mask_text("").text == ""


def test_health_profile_masks_dates() -> None:
    default = MaskingPolicy.load()
    health = MaskingPolicy.load(profile="health")
    assert "DATE_TIME" not in default.entities
    assert "DATE_TIME" in health.entities
    assert health.version != default.version
    masker = Masker(health)
    assert masker.mask_text("admitted 2026-11-26, MRN 12345678").text == (
        "admitted <DATE_TIME>, MRN <MEDICAL_RECORD_NUMBER>"
    )
