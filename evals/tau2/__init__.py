"""tau2-bench (Sierra Research, MIT) airline and retail domains as slmflow tools, with the
benchmark's scoring rule.

- `domains`: which tool module serves which domain.
- `db`: the domain database, a dict kept in `db.json` in the tool's working directory.
- `retail`, `airline`: every tau2 tool of the domain as an `@tool` function (`arithmetic` backs
  their `calculate`).
- `tasks`: the task files; `user`: the user simulator's system prompt and stop tokens.
- `scoring`: tau2's DB and communicate checks, and pass^k.

The data (tasks, db.json, policy.md) is read from the shared data folder, never copied here.
"""
