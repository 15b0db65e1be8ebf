"""A Network spec's verdict: parsed and validated once, read by everyone who
needs it (the admission webhook, the Network index, the round), so a spec
gets one verdict and one message wherever it is reported."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from netpool import status as st
from netpool.overlap import Claim, older_overlap
from netpool.pool import IPNetwork
from netpool.spec import NetworkSpec, SpecError, parse_spec


@dataclasses.dataclass(frozen=True)
class Verdict:
    """A spec as parsed: valid (`spec`) or not (`problems`)."""

    generation: int  # metadata.generation of the spec judged: a new one needs a new verdict
    spec: NetworkSpec | None  # None: the spec is invalid
    problems: str = ""  # why it is invalid: every problem, each naming its field

    @property
    def network(self) -> IPNetwork | None:
        return self.spec.pool.network if self.spec is not None else None

    def claim(self, created: str, ref: str) -> Claim | None:
        """The Network's claim on its cidr (None if its spec is invalid)."""
        if self.spec is None:
            return None
        return Claim(created, ref, self.spec.pool.network, self.spec.pod_cidrs)


def judge(spec: Mapping[str, Any], generation: int = 0) -> Verdict:
    try:
        return Verdict(generation, parse_spec(spec))
    except SpecError as e:
        return Verdict(generation, None, str(e))


def refusal(verdict: Verdict, created: str, ref: str, others: Iterable[Claim]) -> st.Outcome | None:
    """Why the Network allocates nothing (its spec is invalid, or an older
    Network's cidr overlaps its own), or None if it allocates."""
    me = verdict.claim(created, ref)
    if me is None:
        return st.invalid(verdict.problems)
    rival = older_overlap(me, others)
    if rival is not None:
        return st.overlaps(str(me.network), rival.ref, str(rival.network))
    return None
