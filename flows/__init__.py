"""Prefect: the job spec, the DAG, the cascade per unit, the flow, reports and history."""
