"""Example tool pack for tokmem_agent (see docs/tools.md).

``TOOLS`` is a ready-made list of the ten tools; ``make_tools(workdir)`` builds them with the SQLite store
(to-dos and notes) in ``workdir``. ``tools.make_traces`` generates the training traces in ``tools/data``.
"""

from .basic import TODAY, TOOLS, make_tools

__all__ = ["TODAY", "TOOLS", "make_tools"]
