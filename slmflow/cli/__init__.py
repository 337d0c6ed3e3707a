"""The top floor: the `slmflow` command and the local stack it starts. It may import every other
package; nothing imports it (docs/architecture.md)."""
