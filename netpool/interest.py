"""Which Networks a change of one Node concerns: the rest need no work at all.

A Network cares about a Node when the Node starts or stops matching its
selector (joining and leaving count), or when the Node's annotation for it
changes (a hand edit to repair). An invalid Network allocates nothing but
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

    return matched(old) != matched(new)
