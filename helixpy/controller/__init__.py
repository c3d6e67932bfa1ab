"""The controller: leader election, the scheduling pipeline, timers, the gRPC service."""

from helixpy.controller.daemon import Controller, RunState

__all__ = ["Controller", "RunState"]
