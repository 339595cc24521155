"""The spec guard: active specs are reviewed recently, and code changes come with a spec change.

A spec is a Markdown file with YAML front matter (:class:`schemas.SpecFrontMatter`) in one
of the spec folders of a repository. The folders, the code paths and the age limit come
from ``[tool.orchestrator.spec-guard]`` in the repository's ``pyproject.toml``
(:class:`schemas.SpecGuardConfig`); without it, the defaults apply. Git is only needed
for the code-change rule (``base``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from pydantic import ValidationError

from schemas import (
    SpecFinding,
    SpecFrontMatter,
    SpecGuardConfig,
    SpecGuardReport,
    SpecRule,
    utc_now,
)

from ._documents import first_problem, load_yaml, yaml_problem
from .exceptions import InvalidInputError, SpecError
from .gitops import git

MAX_SPEC_FILE_BYTES = 256 * 1024
SPEC_SUFFIX = ".md"
INDEX_FILE_NAMES = frozenset({"README.md"})
FRONT_MATTER_FENCE = "---"
FRONT_MATTER_ENDS = frozenset({"---", "..."})


def check_specs(
    repo: Path,
    *,
    base: str | None = None,
    today: date | None = None,
    max_age_days: int | None = None,
    paths: Sequence[Path] = (),
) -> SpecGuardReport:
    """Check the specs of ``repo`` and report what is wrong.

    Args:
        repo: The repository (its ``pyproject.toml`` holds the guard's settings).
        base: A git ref; files under the code paths changed since its merge base with
            ``HEAD`` (committed, staged, unstaged or untracked) need a spec change too.
        today: The day reviews are measured against (default: today in UTC).
        max_age_days: Overrides the configured age limit.
        paths: Spec files or folders to check instead of the configured spec folders.

    Raises:
        SpecError: a spec file or the settings do not parse or validate (names file and
            field).
        InvalidInputError: a path outside the repository, or an unknown ``base``.
    """
    repo = repo.resolve()
    config = load_config(repo)
    if max_age_days is not None:
        config = config.model_copy(update={"max_age_days": max_age_days})
    today = today or utc_now().date()
    roots = _spec_roots(repo, config, paths)
    report = SpecGuardReport(
        repo=str(repo), today=today, max_age_days=config.max_age_days, base=base
    )
    for spec in find_spec_files(repo, roots):
        rel = _relative(repo, spec)
        front = read_front_matter(spec, shown_as=rel)
        if not front.active:
            report.skipped.append(rel)
            continue
        report.checked.append(rel)
        report.findings.extend(review_findings(rel, front, today, config.max_age_days))
    if base is not None:
        changed = changed_files(repo, base)
        report.findings.extend(code_findings(changed, base, roots, config.code_paths))
    return report


def load_config(repo: Path) -> SpecGuardConfig:
    """The ``[tool.orchestrator.spec-guard]`` table of ``repo/pyproject.toml``, or defaults.

    Raises:
        SpecError: the file is not TOML or the table does not validate.
    """
    pyproject = repo / "pyproject.toml"
    if not pyproject.is_file():
        return SpecGuardConfig()
    try:
        document = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(f"not valid TOML: {exc}", path=str(pyproject)) from None
    table: Any = document.get("tool", {}).get("orchestrator", {}).get("spec-guard", {})
    try:
        return SpecGuardConfig.model_validate(table)
    except ValidationError as exc:
        field, reason = first_problem(exc)
        where = "tool.orchestrator.spec-guard" + (f".{field}" if field else "")
        raise SpecError(reason, path=str(pyproject), field=where) from None


def find_spec_files(repo: Path, roots: Iterable[PurePosixPath]) -> list[Path]:
    """Every ``*.md`` file under the spec roots (files or folders), sorted; READMEs are not
    specs. A configured folder that does not exist holds no specs."""
    found: set[Path] = set()
    for root in roots:
        path = repo / root
        if path.is_file():
            found.add(path)
        elif path.is_dir():
            found.update(
                p for p in path.rglob(f"*{SPEC_SUFFIX}") if p.is_file() and not _is_index(p)
            )
    return sorted(found)


def read_front_matter(path: Path, *, shown_as: str | None = None) -> SpecFrontMatter:
    """Parse and validate the front matter of one spec file.

    Raises:
        SpecError: no front matter, not YAML, or invalid; names the file and the field.
    """
    where = shown_as or str(path)
    block = _front_matter_text(path, where)
    try:
        data = load_yaml(block)
    except yaml.YAMLError as exc:  # line numbers count from the file's top: the fence is 1
        raise SpecError(
            f"front matter is not valid YAML: {yaml_problem(exc, first_line=2)}", path=where
        ) from None
    if not isinstance(data, dict):
        raise SpecError("front matter must be a mapping of fields", path=where)
    try:
        return SpecFrontMatter.model_validate(data)
    except ValidationError as exc:
        field, reason = first_problem(exc)
        raise SpecError(reason, path=where, field=field) from None


def review_findings(
    rel: str, front: SpecFrontMatter, today: date, max_age_days: int
) -> list[SpecFinding]:
    """What is wrong with an active spec's ``last_review``: missing, in the future, or old."""
    if front.last_review is None:
        return [_finding(rel, SpecRule.MISSING_REVIEW, "active spec has no last_review")]
    age = (today - front.last_review).days
    if age < 0:
        detail = f"last_review {front.last_review} is {-age} day(s) after today ({today})"
        return [_finding(rel, SpecRule.FUTURE_REVIEW, detail)]
    if age > max_age_days:
        detail = f"last reviewed {age} days ago ({front.last_review}); the limit is {max_age_days}"
        return [_finding(rel, SpecRule.STALE_REVIEW, detail)]
    return []


def changed_files(repo: Path, base: str) -> list[str]:
    """Files changed since the merge base of ``base`` and ``HEAD``, as repository paths.

    Counts what is committed, staged, unstaged and untracked (but not ignored), so the
    guard says the same before and after the commit.

    Raises:
        InvalidInputError: ``repo`` is not a git repository or ``base`` is no commit.
    """
    top = git(repo, "rev-parse", "--show-toplevel", check=False)
    if not top:
        raise InvalidInputError(f"{repo} is not a git repository; --base needs one")
    if not git(repo, "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}", check=False):
        raise InvalidInputError(f"--base {base!r} is not a commit in {repo}")
    fork = git(repo, "merge-base", base, "HEAD")
    diffed = git(repo, "diff", "--name-only", "--no-renames", "-z", fork, "--")
    untracked = git(repo, "ls-files", "--others", "--exclude-standard", "--full-name", "-z")
    prefix = _relative(Path(top), repo.resolve())
    names = {n for n in (diffed + "\0" + untracked).split("\0") if n}
    return sorted(_strip_prefix(n, prefix) for n in names if _under(n, prefix))


def code_findings(
    changed: Iterable[str],
    base: str,
    spec_roots: Sequence[PurePosixPath],
    code_paths: Sequence[str],
) -> list[SpecFinding]:
    """One finding per changed code file when no spec file changed at all."""
    changed = list(changed)
    if any(_is_spec(name, spec_roots) for name in changed):
        return []
    code = [
        name
        for name in changed
        if not _is_spec(name, spec_roots) and _is_code(name, spec_roots, code_paths)
    ]
    detail = f"changed since {base} with no spec file changed"
    return [_finding(name, SpecRule.CODE_WITHOUT_SPEC, detail) for name in code]


def _front_matter_text(path: Path, where: str) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_SPEC_FILE_BYTES:
            raise SpecError(
                f"file is {size} bytes; specs are at most {MAX_SPEC_FILE_BYTES}", path=where
            )
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise SpecError("no such file", path=where) from None
    except UnicodeDecodeError:
        raise SpecError("not UTF-8 text", path=where) from None
    if not lines or lines[0].strip() != FRONT_MATTER_FENCE:
        raise SpecError("no front matter: the file must start with a '---' line", path=where)
    for number, line in enumerate(lines[1:], start=1):
        if line.strip() in FRONT_MATTER_ENDS:
            return "\n".join(lines[1:number])
    raise SpecError("front matter is not closed by a '---' line", path=where)


def _spec_roots(repo: Path, config: SpecGuardConfig, paths: Sequence[Path]) -> list[PurePosixPath]:
    if not paths:
        return [PurePosixPath(d) for d in config.spec_dirs]
    roots = []
    for path in paths:
        absolute = path if path.is_absolute() else Path.cwd() / path
        if not absolute.exists():
            raise InvalidInputError(f"{path}: no such file or folder")
        roots.append(PurePosixPath(_relative(repo, absolute.resolve())))
    return roots


def _relative(repo: Path, path: Path) -> str:
    try:
        return path.relative_to(repo).as_posix()
    except ValueError:
        raise InvalidInputError(f"{path} is outside the repository {repo}") from None


def _under(name: str, prefix: str) -> bool:
    return prefix == "." or PurePosixPath(name).is_relative_to(prefix)


def _strip_prefix(name: str, prefix: str) -> str:
    return name if prefix == "." else PurePosixPath(name).relative_to(prefix).as_posix()


def _is_spec(name: str, roots: Sequence[PurePosixPath]) -> bool:
    path = PurePosixPath(name)
    return (
        path.suffix == SPEC_SUFFIX
        and path.name not in INDEX_FILE_NAMES
        and any(path.is_relative_to(root) for root in roots)
    )


def _is_code(name: str, spec_roots: Sequence[PurePosixPath], code_paths: Sequence[str]) -> bool:
    path = PurePosixPath(name)
    if not code_paths:  # no code paths configured: every file outside the spec folders
        return not any(path.is_relative_to(root) for root in spec_roots)
    return any(path.is_relative_to(PurePosixPath(code)) for code in code_paths)


def _is_index(path: Path) -> bool:
    return path.name in INDEX_FILE_NAMES


def _finding(file: str, rule: SpecRule, detail: str) -> SpecFinding:
    return SpecFinding(file=file, rule=rule, detail=detail)
