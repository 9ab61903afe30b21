"""Validates a speedscope file against speedscope's own JSON schema (file-format-schema.json
from its npm package) with the jsonschema library; prints each profile's weight per frame
name (anywhere on the stack) as JSON. usage: check_speedscope.py SCHEMA FILE"""
import json
import sys

import jsonschema

schema = json.load(open(sys.argv[1]))
doc = json.load(open(sys.argv[2]))
jsonschema.validate(doc, schema)
frames = doc["shared"]["frames"]
out = []
for p in doc["profiles"]:
    by_name = {}
    for stack, w in zip(p["samples"], p["weights"]):
        for name in {frames[i]["name"] for i in stack}:
            by_name[name] = by_name.get(name, 0) + w
    out.append({"name": p["name"], "end": p["endValue"], "functions": by_name})
print(json.dumps(out))
