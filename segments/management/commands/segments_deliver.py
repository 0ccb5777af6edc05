"""The send worker: delivers due trigger-campaign sends (email, SMS, push) from the outbox.

No lock: several send workers may run at once (each send row is locked while it is sent)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from segments.commands import PassLoop


class Command(PassLoop):
    help = "Deliver due trigger-campaign sends (one row at a time, locked while sending)."
    default_interval = 2.0
    loop_lock = False

    def one_pass(self, options: dict[str, Any]) -> Callable[[], dict[str, Any]]:
        from segments.triggers import deliver_due

        return deliver_due
