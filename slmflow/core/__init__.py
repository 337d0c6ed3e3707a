"""The ground floor: typed records, the settings object, shared errors, the Ray environment, model
preparation and the readers of the local stack's state. It imports nothing else of the project,
so every other package may import it (docs/architecture.md)."""
