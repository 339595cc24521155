"""Run one libcst codemod over files, in a process of its own.

``python -m orchestrator._libcst_runner SCRIPT [CODEMOD ARGS...]`` with the file names
(relative to the current folder) on stdin, one a line. SCRIPT defines exactly one
``libcst.codemod.Codemod`` subclass; a ``CodemodCommand``'s ``add_args`` parses the
arguments. The codemod's own code runs here, never in the orchestrator's process (a
sandbox can wrap this command later).

Exit codes: 0 done (``changed: FILE`` on stdout for each file written), 1 a file could
not be transformed (nothing is written then), 2 a bad script or bad arguments.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import sys
from dataclasses import replace
from pathlib import Path

from libcst.codemod import (
    Codemod,
    CodemodCommand,
    CodemodContext,
    TransformExit,
    TransformFailure,
    TransformSuccess,
    transform_module,
)

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="orchestrator._libcst_runner")
    parser.add_argument("script", type=Path)
    known, rest = parser.parse_known_args(argv)
    try:
        codemod_class = _codemod_class(known.script)
    except (ImportError, SyntaxError, ValueError) as exc:
        print(f"error: {known.script}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    options = _options(codemod_class, rest)
    files = [line for line in sys.stdin.read().splitlines() if line]
    return _transform(codemod_class, options, files)


def _codemod_class(script: Path) -> type[Codemod]:
    spec = importlib.util.spec_from_file_location(f"_library_codemod_{script.stem}", script)
    if spec is None or spec.loader is None:
        raise ImportError("not a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, Codemod)
        and obj.__module__ == module.__name__
        and not inspect.isabstract(obj)
    ]
    if len(found) != 1:
        raise ValueError(f"defines {len(found)} codemod classes; it must define exactly one")
    return found[0]


def _options(codemod_class: type[Codemod], args: list[str]) -> dict[str, object]:
    parser = argparse.ArgumentParser(prog=codemod_class.__name__)
    if issubclass(codemod_class, CodemodCommand):
        codemod_class.add_args(parser)
    return vars(parser.parse_args(args))  # exits 2 with a usage message on bad arguments


def _transform(codemod_class: type[Codemod], options: dict[str, object], files: list[str]) -> int:
    context = CodemodContext()
    codemod = codemod_class(context, **options)  # add_args decides the keywords
    results: dict[str, str] = {}
    for name in files:
        code = Path(name).read_text(encoding="utf-8")
        codemod.context = replace(context, filename=name)
        result = transform_module(codemod, code)
        if isinstance(result, TransformFailure | TransformExit):
            detail = getattr(result, "error", result)
            print(f"error: {name}: {type(detail).__name__}: {detail}", file=sys.stderr)
            return EXIT_FAILED
        if isinstance(result, TransformSuccess) and result.code != code:
            results[name] = result.code
    for name, new_code in results.items():  # all or nothing: write only when every file worked
        Path(name).write_text(new_code, encoding="utf-8")
        print(f"changed: {name}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
