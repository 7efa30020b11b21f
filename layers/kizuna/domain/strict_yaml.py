"""YAML mappings whose keys are all different.

PyYAML's ``safe_load`` keeps the last of a repeated key: a segment file giving
``rfm_segment: [Champions]`` and further down ``rfm_segment: [Lost]`` loads without a word
and targets the lost customers. Everything Kizuna reads as YAML -- programs, campaigns,
segments, a campaign sent to the API or the console -- is refused instead, as a repeated
JSON key is (:mod:`kizuna.domain.strict_json`). A merge key (``<<: *defaults``) still
merges: only keys written twice in one mapping are refused.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode


class _UniqueKeys(yaml.SafeLoader):
    """``yaml.SafeLoader`` refusing a key given twice in one mapping."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                repeated = key in seen
            except TypeError:
                continue  # an unhashable key: SafeLoader's own error follows
            if repeated:
                raise ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"the key {key!r} is given twice",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load(text: str) -> Any:
    """The document in ``text`` (``yaml.safe_load``'s reading); :class:`yaml.YAMLError` when
    it is not valid YAML or a mapping gives a key twice."""
    return yaml.load(text, Loader=_UniqueKeys)  # noqa: S506 (a SafeLoader)
