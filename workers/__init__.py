"""Ray: the fleet of model engines, the frontier client, the verifier and retrieval as actors."""
