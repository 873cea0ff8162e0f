"""Each task's runtime, on the serving side: what an exported version promises (its spec), the
pre- and post-processing around the SavedModel, and the pipeline bound to one loaded version that
the route, ``python -m training <task> evaluate``, the bulk commands and ``bench/`` all call.

These packages import neither ``training`` nor ``fastapi`` (an import contract in
``pyproject.toml``, checked by ``lint-imports`` in CI); training imports them to export and to
evaluate. :mod:`app.tasks.catalog` lists them for the registry.
"""
