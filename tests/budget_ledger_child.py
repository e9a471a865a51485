"""A process that charges a shared budget ledger (imported as ``budget_ledger_child``).

Run by tests/test_budgets.py in several processes at once, all charging the same scope: each
prints, as JSON, the thresholds its charges were the first to cross.
"""

from __future__ import annotations

import json
import os
import sys
import time

from otel_llm_audit.processing.budget_ledger import BudgetLedger, Charge

THRESHOLDS = [(0.5, 50.0), (0.8, 80.0), (1.0, 100.0)]


def main(path: str, charges: int, start_gate: str) -> int:
    ledger = BudgetLedger(path)
    deadline = time.monotonic() + 60
    while not os.path.exists(start_gate):  # all start charging together, once the test says go
        if time.monotonic() > deadline:
            return 2
        time.sleep(0.005)
    crossed: list[float] = []
    for _ in range(charges):
        (result,) = ledger.charge([Charge("shared", '{"team":"t"}', "2026-11-27", 1.0, THRESHOLDS)])
        crossed.extend(result.crossed)
    ledger.close()
    print(json.dumps(crossed))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
