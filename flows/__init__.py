import slmflow  # noqa: F401 - applies the local Ray environment before anything imports ray
