"""Parses a Prometheus text exposition (stdin) with prometheus_client's parser and prints
it as JSON: {family: {"type": ..., "samples": [[name, labels, value], ...]}}. Exits non-zero
(with the parser's error) on text the parser refuses."""
import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families

out = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    if family.name in out:
        sys.exit(f"family {family.name} appears twice")
    out[family.name] = {
        "type": family.type,
        "samples": [[s.name, s.labels, None if math.isnan(s.value) else s.value] for s in family.samples],
    }
json.dump(out, sys.stdout)
