"""The --fleet wiring of the independent-answer check, without Ray."""

import pytest


def test_connect_fleet_pins_the_named_member(tmp_path, monkeypatch) -> None:
    """The --fleet wiring without Ray: RayWorkers over a view where the chosen member serves every kind."""
    import ray

    from slmflow.core.settings import Settings
    from workers import crosscheck
    from workers import fleet as fleet_mod

    config = tmp_path / "fleet.yaml"
    config.write_text("small:\n  - {name: writer, kinds: [answer]}\n  - {name: checker, replicas: 2}\n")
    settings = Settings(fleet_file=config)
    closed = []
    monkeypatch.setattr(fleet_mod, "get_fleet", lambda s: type("F", (), {"frontier": "frontier-actor"})())
    monkeypatch.setattr(fleet_mod, "close_fleet", lambda: closed.append(True))
    monkeypatch.setattr(ray, "get_actor", lambda name, namespace=None: f"actor {name}")
    got = crosscheck.connect_fleet(settings, "checker")
    assert got.name == "checker"
    view = got.workers.fleet
    assert [view.small_for(k) for k in ("classify", "answer", "extract")] == [
        "actor small:checker:0",
        "actor small:checker:1",
        "actor small:checker:0",
    ]
    assert view.frontier == "frontier-actor"
    got.close()
    assert closed == [True]
    assert crosscheck.connect_fleet(settings, None).name == "writer"
    with pytest.raises(ValueError, match="no small model named 'nope'"):
        crosscheck.connect_fleet(settings, "nope")
