"""Console pages of workflows: the list, the change page (the draft as Dify DSL text, its
problems, a picture of its graph, its versions), import and export, publish, compare and
rollback, the Run page, and the runs with their node timeline, Stop button and human-input
answers.

Permissions come from the matrix: `workflow.view` (operator+) to look, `workflow.run`
(operator+) to run, stop and answer, `workflow.manage` (builder+) for every change. Another
tenant's workflow, version or run answers 404. Every write goes through workflows.services
or workflows.runner, which write the audit rows.
"""

from . import runs, workflows

__all__ = ["runs", "workflows"]
