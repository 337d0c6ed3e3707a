"""A fleet member as an independent second opinion (`verification.independent`): the running fleet,
pinned to one small model that answers every kind. Its `workers.small` is the plain
`small(request)` callable that `verification.independent.alternatives` takes, the same function
the flow's cross-check calls."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slmflow.core.settings import Settings
from workers.fleet import ALL_KINDS
from workers.remote import RayWorkers
from workers.routing import Router


@dataclass
class FleetCrossCheck:
    """Workers whose `small()` goes to one named fleet member, and how to let go of the fleet."""

    workers: RayWorkers
    name: str
    close: Callable[[], None]


class _Pinned:
    """A view of the fleet in which one member's replicas serve every kind."""

    def __init__(self, fleet: Any, actors: dict[str, Any]):
        self._fleet = fleet
        self.router = Router({kind: list(actors) for kind in ALL_KINDS}, actors)

    def small_for(self, kind: str) -> Any:
        return self.router.choose(kind)

    def lease(self, kind: str):
        return self.router.lease(kind)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fleet, name)


def connect_fleet(settings: Settings, name: str | None = None) -> FleetCrossCheck:
    """The running fleet (`get_fleet`) behind `RayWorkers`, pinned to the member `name` (default:
    the first small model of the fleet config). Needs Ray; imported only with `--fleet`."""
    import ray

    from workers.fleet import FleetConfig, close_fleet, get_fleet, replica_name

    config = FleetConfig.load(settings)
    members = [s.name for s in config.small]
    chosen = name or members[0]
    if chosen not in members:
        raise ValueError(f"no small model named {chosen!r} in the fleet; it has {members}")
    fleet = get_fleet(settings)
    spec = next(s for s in config.small if s.name == chosen)
    names = [replica_name(chosen, n) for n in range(spec.replicas)]
    actors = {n: ray.get_actor(n, namespace=settings.ray_namespace) for n in names}
    return FleetCrossCheck(RayWorkers(_Pinned(fleet, actors)), chosen, close_fleet)
