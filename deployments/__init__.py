"""The jobs slmflow ships: one folder per job with its spec (`job.yaml`) and data. Installed with the
package, so `slmflow run support-inbox` works from any directory (flows/catalog.py finds them)."""
