"""Parses a Prometheus text exposition (read from stdin) with the reference parser,
prometheus_client's, and prints what it read as one JSON object:
{"families": [{"name", "type", "samples": [{"name", "labels", "value"}]}]}.

Any text the parser refuses makes this script fail with the parser's error. Run by
tests/gateway/service.rs with PYTHONPATH pointing at .peers/py-tools (see .ci/run).
"""

import json
import sys

from prometheus_client.parser import text_string_to_metric_families


def main():
    text = sys.stdin.read()
    families = [
        {
            "name": family.name,
            "type": family.type,
            "samples": [
                {"name": s.name, "labels": s.labels, "value": s.value}
                for s in family.samples
            ],
        }
        for family in text_string_to_metric_families(text)
    ]
    json.dump({"families": families}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
