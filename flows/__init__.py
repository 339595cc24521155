"""Prefect flows: thin wiring of the agent steps and core services into a pipeline.

Import the flow modules themselves (``flows.pipeline``, ``flows.plan`` ...): this
package's ``__init__`` imports nothing, so importing it stays cheap.
"""

__all__: list[str] = []
