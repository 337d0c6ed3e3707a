"""slmflow: agent jobs on a fleet of small models, grounded, verified, escalated only on failure."""

from slmflow.rayenv import apply_local_ray_env

# Ray reads these when it is imported, so they are applied before any of our modules import it.
apply_local_ray_env()
