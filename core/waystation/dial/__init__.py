"""Dial eligibility: evidence per phone check, verdicts under a named policy, calling windows, and
the export-time re-check (see ``docs/compliance.md``; this is a tool, not legal advice).

Light to import: pydantic and the standard library only.
"""

from waystation.dial.evidence import EVIDENCE_FIELD, Evidence
from waystation.dial.export import ExportCheck, recheck, refusal
from waystation.dial.policy import POLICIES, DialPolicy, Verdict, decide, policy
from waystation.dial.windows import Rule, RuleTable, Window, load_rules, next_window

__all__ = ["EVIDENCE_FIELD", "POLICIES", "DialPolicy", "Evidence", "ExportCheck", "Rule", "RuleTable", "Verdict",
           "Window", "decide", "load_rules", "next_window", "policy", "recheck", "refusal"]
