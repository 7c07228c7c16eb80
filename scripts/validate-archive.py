#!/usr/bin/env python3
"""Validates ClusterCockpit job-archive files against the official JSON schemas.

usage: validate-archive.py <schema-dir> <meta|data> <file> [<file> ...]
Prints one line per validation error ("<file>: <path>: <message>") and exits 1 when there
was any (2 on usage or I/O errors); data.json.gz files are decompressed first.
"""
import glob
import gzip
import json
import sys

from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012


def main() -> int:
    schema_dir, kind, files = sys.argv[1], sys.argv[2], sys.argv[3:]
    schemas = {}
    for path in glob.glob(f"{schema_dir}/*.schema.json"):
        with open(path) as f:
            schema = json.load(f)
        schemas[schema["$id"]] = schema
    # The schemas say "http://json-schema.org/draft/2020-12/schema" (no https, no '#'), which
    # the detector does not know: they are 2020-12 schemas, so say so.
    registry = Registry().with_resources([(k, DRAFT202012.create_resource(v)) for k, v in schemas.items()])
    root = schemas["embedfs://job-meta.schema.json" if kind == "meta" else "embedfs://job-data.schema.json"]
    validator = Draft202012Validator(root, registry=registry)
    failed = False
    for path in files:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt") as f:
            document = json.load(f)
        for error in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path)):
            failed = True
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            print(f"{path}: {where}: {error.message}")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # a validator that cannot run must not look like "invalid"
        print(f"validate-archive: {e!r}", file=sys.stderr)
        sys.exit(2)
