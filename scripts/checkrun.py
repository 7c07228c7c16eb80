"""Runs an async check the way the test scripts report: exit 0 when it passes, 1 with
"FAILED: <reason>" on a failed assertion, 2 when the check itself cannot run."""
import asyncio
import sys


def run(main, name):
    try:
        asyncio.run(main())
    except AssertionError as e:
        print(f"FAILED: {e}")
        sys.exit(1)
    except Exception as e:  # the check could not run: not the same as "the service is wrong"
        print(f"{name}: {e!r}", file=sys.stderr)
        sys.exit(2)
