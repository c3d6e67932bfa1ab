"""The workflow YAML schema (see docs/workflow-yaml.md).

```yaml
name: etl                 # workflow name
config:                   # optional WorkflowConfig fields
  failure_threshold: 0
jobs:
  extract:                # job name -> JobConfig fields
    command: Extract
    num_tasks: 4
    command_config: {source: s3}
  load:
    command: Load
    tasks:                # or explicit tasks
      - {id: t1, config: {table: a}}
    parents: [extract]    # dependencies
```
Durations are seconds; ``execution_start`` is an ISO-8601 time with a UTC offset.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml

from helixpy.errors import InvalidConfig

if TYPE_CHECKING:
    from helixpy.model.workflow import Workflow


class _LineLoader(yaml.SafeLoader):
    """A safe loader that records where each mapping key was written."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        # id(mapping) -> {key: line}; the mappings live as long as the loaded document.
        self.key_lines: dict[int, dict[Any, int]] = {}


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping: dict[Any, Any] = {}
    lines: dict[Any, int] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in mapping:
            raise InvalidConfig(f"line {key_node.start_mark.line + 1}", f"duplicate key {key!r}")
        mapping[key] = loader.construct_object(value_node, deep=True)
        lines[key] = key_node.start_mark.line + 1
    loader.key_lines[id(mapping)] = lines
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def workflow_from_yaml(text: str) -> Workflow:
    """Parse ``text``; an error names the YAML line and the field when it can."""
    from helixpy.model.workflow import Workflow

    if not isinstance(text, str):
        raise InvalidConfig("yaml", "must be a string")
    loader = _LineLoader(text)
    try:
        try:
            data = loader.get_single_data()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            where = f"line {mark.line + 1}" if mark is not None else "yaml"
            raise InvalidConfig(where, f"not valid YAML: {exc.problem}") from None
        except yaml.YAMLError as exc:
            raise InvalidConfig("yaml", f"not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise InvalidConfig("line 1", "a workflow document must be a mapping")
        try:
            return Workflow.from_dict(data)
        except InvalidConfig as exc:
            line = _line_of(data, exc.field, loader.key_lines)
            if line is None:
                raise
            raise InvalidConfig(f"{exc.field} (line {line})", exc.rule) from None
    finally:
        loader.dispose()


def _line_of(data: dict[str, Any], dotted: str, key_lines: dict[int, dict[Any, int]]) -> int | None:
    """The line of the deepest key along ``dotted`` (``jobs.a.tasks[0].id``)."""
    node: Any = data
    line: int | None = None
    for raw in dotted.replace("[", ".").replace("]", "").split("."):
        if isinstance(node, dict):
            if raw not in node:
                break
            line = key_lines.get(id(node), {}).get(raw, line)
            node = node[raw]
        elif isinstance(node, list) and raw.isdigit() and int(raw) < len(node):
            node = node[int(raw)]
        else:
            break
    return line


def workflow_to_yaml(workflow: Workflow) -> str:
    """Serialize ``workflow`` in the schema ``workflow_from_yaml`` reads."""
    return yaml.safe_dump(workflow.to_dict(), sort_keys=False, default_flow_style=False)
