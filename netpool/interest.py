"""Which Networks a change of one Node concerns: the rest need no work at all.

A Network cares about a Node when the Node starts or stops matching its
selector (joining and leaving count), or when the Node's annotation for it
changes (a hand edit to repair), or when a Node it selects gets podCIDRs (set
once, by this operator or another writer: they pin or block a subnet). An invalid Network allocates nothing but
counts the Nodes that still carry its subnets, so only its annotation matters.
"""

from __future__ import annotations

from netpool.selector import Selector
from netpool.views import NodeView


def concerns(old: NodeView | None, new: NodeView | None, selector: Selector | None, ann_key: str) -> bool:
    """Whether the Node's change from `old` to `new` (None: absent) can change
    the allocations or the status of the Network with this selector (None: its
    spec is invalid) and annotation key."""
    if (old.subnets if old else {}).get(ann_key) != (new.subnets if new else {}).get(ann_key):
        return True
    if selector is None:
        return False

    def matched(view: NodeView | None) -> bool:
        return view is not None and selector.matches(view.labels)

    if old is not None and new is not None and old.pod_cidrs != new.pod_cidrs and (matched(old) or matched(new)):
        return True
    return matched(old) != matched(new)
