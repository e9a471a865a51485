"""The documented rules that turn a resume value into a review action, subject and reason."""

from __future__ import annotations

from typing import Any

import pytest

from otel_llm_audit.instrumentation.langchain._langgraph_reviews import review_action, review_reason, review_subject

PROPOSAL = {"type": "refund_approval", "amount": 120}


@pytest.mark.parametrize(
    ("response", "action"),
    [
        (True, "approved"),
        (False, "rejected"),
        ("approve", "approved"),
        (" Yes ", "approved"),
        ("accept", "approved"),
        ("deny", "rejected"),
        ("REJECT", "rejected"),
        ("edit", "edited"),
        ("escalate", "escalated"),
        ({"action": "approve"}, "approved"),
        ({"type": "accept", "args": None}, "approved"),
        ({"decision": "reject", "reason": "over the limit"}, "rejected"),
        ({"type": "edit", "args": {"amount": 80}}, "edited"),
        ({"type": "response", "args": "call the patient first"}, "edited"),
        ({"type": "ignore"}, "rejected"),
        ({"action": "escalate"}, "escalated"),
        # LangChain's human-in-the-loop middleware answers with a list of decisions
        ({"decisions": [{"type": "approve"}, {"type": "approve"}]}, "approved"),
        ({"decisions": [{"type": "approve"}, {"type": "edit", "edited_action": {}}]}, "edited"),
        ({"decisions": [{"type": "edit"}, {"type": "reject", "message": "no"}]}, "rejected"),
        ([{"type": "accept"}], "approved"),
        # no word: the answer is compared with what was proposed
        (dict(PROPOSAL), "approved"),
        ({"type": "refund_approval", "amount": 80}, "edited"),
        ("30 years old", "edited"),
        (42, "edited"),
    ],
)
def test_review_action(response: Any, action: str) -> None:
    assert review_action(response, PROPOSAL) == action


def test_an_answer_whose_comparison_raises_is_an_edit() -> None:
    class Odd:
        def __eq__(self, other: object) -> bool:
            raise TypeError("no comparison")

    assert review_action(Odd(), PROPOSAL) == "edited"


@pytest.mark.parametrize(
    ("proposal", "node", "subject"),
    [
        ({"type": "refund_approval", "question": "Refund Jane?"}, "review", "refund_approval"),
        ({"subject": "discharge summary draft"}, None, "discharge summary draft"),
        ({"action": "send_email", "args": {"to": "a@b.c"}}, None, "send_email"),
        (
            {"action_requests": [{"name": "send_email", "args": {}}, {"name": "book_bed"}], "review_configs": []},
            None,
            "tool_call send_email, book_bed",
        ),
        # a question is content, not a label: the node names what was asked
        ({"question": "Is 5mg right for Jane Roe?"}, "dose_check", "interrupt dose_check"),
        ("Approve the refund to jane.roe@example.com?", "review", "interrupt review"),
        (None, None, "interrupt"),
        ({"type": "x" * 200}, None, "x" * 80),
    ],
)
def test_review_subject_is_a_label_never_content(proposal: Any, node: str | None, subject: str) -> None:
    assert review_subject(proposal, node) == subject


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        ({"decision": "reject", "reason": "over the limit"}, "over the limit"),
        ({"type": "reject", "message": "call first"}, "call first"),
        ({"action": "approve", "comment": "  "}, None),
        ("reject", None),
    ],
)
def test_review_reason(response: Any, reason: str | None) -> None:
    assert review_reason(response) == reason
