"""Environments match the code (STYLE.md: "each rule family's env must hold what its steps
import; a test proves it").

Every rule names a conda env file (`conda:`) and calls one `cacflow <step>`. For each env file
a virtual environment holds exactly the pip packages it declares (its pins; their own
dependencies at the versions of envs/requirements.txt), then its post-deploy script runs
(cacflow itself with --no-deps, as `--sdm conda` does). In it, per rule: `cacflow <step>
--help`, and an import of every cacflow module the step imported in the tiny end-to-end run
(the jobs ran with ``PYTHONPROFILEIMPORTTIME``, so each log lists the modules, lazy imports
inside functions included) or, for a rule that run does not reach, the modules its CLI
handler imports; plus every third-party module those cacflow modules import by name and
the run imported. The venvs are cached in the test venv (`<sys.prefix>/cacflow-envs/`),
keyed by the env files, the pins and this checkout.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from wf import REPO

ENVS = REPO / "envs"
RULE_FILES = sorted((REPO / "workflow" / "rules").glob("*.smk"))
CLI = REPO / "workflow" / "cacflow" / "cli.py"
ENV_CACHE = Path(sys.prefix) / "cacflow-envs"
PIP_TIMEOUT_S = 900
VENV_OWN = {"pip", "setuptools", "wheel"}
"""Distributions a new venv brings itself (not linked from the test venv)."""


@dataclass(frozen=True)
class RuleEnv:
    """A rule's step command, its conda env file and its log path pattern."""

    rule: str
    step: str
    env: Path
    log: str


def _directive(body: str, name: str) -> str | None:
    """First quoted string after ``name:`` in a rule body (uniform rule shape, snakefmt)."""
    m = re.search(rf"^\s+{name}:\s*\n?\s*\"([^\"]+)\"", body, flags=re.MULTILINE)
    return m.group(1) if m else None


def rule_envs() -> list[RuleEnv]:
    """Every rule that calls `cacflow`, from workflow/rules/*.smk."""
    rules = []
    for path in RULE_FILES:
        blocks = re.split(r"^(?:rule|checkpoint) (\w+):\n", path.read_text(), flags=re.MULTILINE)
        for name, body in zip(blocks[1::2], blocks[2::2], strict=True):
            step = re.search(r"\"cacflow ([a-z][a-z-]*)", body)
            if step is None:
                continue
            conda = _directive(body, "conda")
            assert conda, f"{path.name}: rule {name} calls cacflow but names no conda env"
            log = _directive(body, "log")
            assert log, f"{path.name}: rule {name} has no log"
            env = (path.parent / conda).resolve()
            rules.append(RuleEnv(name, step.group(1), env, log))
    return rules


RULES = rule_envs()


def _pip_pins(env_file: Path) -> list[str]:
    deps = yaml.safe_load(env_file.read_text())["dependencies"]
    return [pin for d in deps if isinstance(d, dict) for pin in d.get("pip", [])]


def _pins(path: Path) -> dict[str, str]:
    """``name -> version`` of a requirements file of exact pins."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            out[canonicalize_name(req.name)] = str(req.specifier)
    return out


def test_every_env_file_pins_the_venv_versions() -> None:
    """conda users get the versions of the venv path: each pip pin of envs/*.yaml is the
    pin of envs/requirements.txt (or requirements-nodeps.txt)."""
    venv = _pins(ENVS / "requirements.txt") | _pins(ENVS / "requirements-nodeps.txt")
    env_files = sorted(ENVS.glob("*.yaml"))
    assert env_files
    for env_file in env_files:
        for pin in _pip_pins(env_file):
            req = Requirement(pin)
            name = canonicalize_name(req.name)
            assert str(req.specifier) == venv.get(name), (env_file.name, pin, venv.get(name))


def test_every_step_has_one_env() -> None:
    """A step called by several rules runs in the same env everywhere (what this test checks
    for a step is checked once)."""
    envs: dict[str, set[Path]] = {}
    for r in RULES:
        envs.setdefault(r.step, set()).add(r.env)
    assert {s for s, e in envs.items() if len(e) > 1} == set()
    assert all(r.env.is_file() for r in RULES), [r.env for r in RULES if not r.env.is_file()]


# --- building the venvs ------------------------------------------------------------------
def _env_key(env_file: Path) -> str:
    digest = hashlib.sha256(str(REPO).encode())
    for path in (
        env_file,
        env_file.with_suffix(".post-deploy.sh"),
        ENVS / "requirements.txt",
        ENVS / "requirements-nodeps.txt",
        REPO / "pyproject.toml",
    ):
        digest.update(path.read_bytes() if path.exists() else b"")
    return f"{env_file.stem}-{digest.hexdigest()[:12]}"


def _run(cmd: list[str], **kwargs) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, **kwargs)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")


def resolve_env(env_file: Path) -> dict[str, str]:
    """``name -> version`` of every distribution pip installs for ``env_file``'s pip pins
    (transitive dependencies constrained by envs/requirements.txt), from pip's own
    resolver (``--dry-run --report``)."""
    report = ENV_CACHE / f"{env_file.stem}.resolve.json"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--dry-run", "--ignore-installed"]
    _run(
        [*pip, "--report", str(report), "-c", str(ENVS / "requirements.txt"), *_pip_pins(env_file)]
    )
    items = json.loads(report.read_text())["install"]
    return {canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"] for i in items}


def _top_level_entries(dist: metadata.Distribution) -> set[str]:
    """Top-level names (packages, modules, .libs folders, dist-info) a distribution installed
    into site-packages."""
    entries = {str(f).split("/")[0] for f in dist.files or []}
    return {e for e in entries if e not in ("..", "__pycache__", "")}


def build_env(env_file: Path) -> Path:
    """The venv of ``env_file``: pip resolves the env file's pins; each distribution it would
    install is linked from this test venv (the same version, so the same files: faster than
    unpacking 3 GB of wheels again); then the env's post-deploy script runs as with
    ``--sdm conda``. Built once, cached by :func:`_env_key`; complete when stamped."""
    target = ENV_CACHE / _env_key(env_file)
    stamp = target / ".complete"
    if stamp.exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    resolved = resolve_env(env_file)
    _run([sys.executable, "-m", "venv", str(target)])
    (site,) = (target / "lib").glob("python3*/site-packages")
    for name, version in sorted(resolved.items()):
        if name in VENV_OWN:
            continue
        dist = metadata.distribution(name)
        assert dist.version == version, (
            f"envs/{env_file.name} resolves {name}=={version} but the venv has {dist.version}: "
            "pin it in envs/requirements.txt"
        )
        root = Path(dist.locate_file(""))
        for entry in _top_level_entries(dist):
            link = site / entry
            if not link.exists():
                link.symlink_to(root / entry)
    env = dict(os.environ, CACFLOW_SRC=str(REPO))
    env["PATH"] = f"{target / 'bin'}{os.pathsep}{os.environ['PATH']}"
    env.pop("PYTHONPATH", None)
    _run(["bash", str(env_file.with_suffix(".post-deploy.sh"))], env=env)
    stamp.touch()
    return target


@pytest.fixture(scope="session")
def env_venvs() -> dict[Path, Path]:
    """Env file -> its venv, for every env file a rule names (built side by side)."""
    env_files = sorted({r.env for r in RULES})
    ENV_CACHE.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=len(env_files)) as pool:
        return dict(zip(env_files, pool.map(build_env, env_files), strict=True))


# --- what a step imports -----------------------------------------------------------------
def _imported_modules(log: Path) -> set[str]:
    """Module names of the ``-X importtime`` lines of a job log."""
    names = set()
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("import time:") and "imported package" not in line:
            names.add(line.rsplit("|", 1)[-1].strip())
    return names


@cache
def _module_imports(module: str) -> frozenset[str]:
    """Top-level names of every module a cacflow module imports by name, at any depth of
    its code (functions included), relative imports resolved."""
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, module
    tree = ast.parse(Path(spec.origin).read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return frozenset(n.split(".")[0] for n in names)


def _handler_imports(step: str) -> set[str]:
    """cacflow modules the CLI handler of ``step`` imports (``_<step>`` in cli.py)."""
    tree = ast.parse(CLI.read_text())
    name = "_" + step.replace("-", "_")
    (func,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name]
    return {
        n.module
        for n in ast.walk(func)
        if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("cacflow")
    }


def step_modules(rule: RuleEnv, run: Path) -> tuple[list[str], bool]:
    """Modules to import for ``rule``, and whether they come from the tiny run's logs."""
    pattern = re.sub(r"\{[^}]+\}", "*", rule.log)
    logged: set[str] = set()
    for log in run.glob(pattern):
        logged |= _imported_modules(log)
    ours = {m for m in logged if m == "cacflow" or m.startswith("cacflow.")}
    ran = bool(ours)
    if not ran:
        ours = _handler_imports(rule.step)
    top_logged = {m.split(".")[0] for m in logged}
    third = {
        name
        for m in ours
        for name in _module_imports(m)
        if name != "cacflow" and name not in sys.stdlib_module_names and name in top_logged
    }
    return sorted(ours) + sorted(third), ran


CHECK_IMPORTS = """
import importlib, sys
failed = []
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed.append(f"{name}: {type(exc).__name__}: {exc}")
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


@pytest.mark.slow
def test_the_tiny_run_reaches_every_env(tiny_run: Path) -> None:
    """The log harvest works: at least one rule per env file ran and logged its imports."""
    ran = {r.env for r in RULES if step_modules(r, tiny_run)[1]}
    assert ran == {r.env for r in RULES}


@pytest.mark.slow
@pytest.mark.parametrize("rule", RULES, ids=[r.rule for r in RULES])
def test_step_runs_in_its_env(rule: RuleEnv, tiny_run: Path, env_venvs: dict) -> None:
    venv = env_venvs[rule.env]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    help_ = subprocess.run(
        [str(venv / "bin" / "cacflow"), rule.step, "--help"], capture_output=True, text=True
    )
    assert help_.returncode == 0, help_.stderr
    modules, _ = step_modules(rule, tiny_run)
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-c", CHECK_IMPORTS, *modules],
        capture_output=True,
        text=True,
        env=env,
        cwd=venv,
    )
    where = f"rule {rule.rule} (cacflow {rule.step}) in envs/{rule.env.name}"
    assert proc.returncode == 0, f"{where} cannot import:\n{proc.stdout}{proc.stderr[-2000:]}"


def test_pyproject_declares_every_import() -> None:
    """Every third-party module the package imports (anywhere, lazy imports included) comes
    from a distribution listed in pyproject.toml's ``dependencies`` or in an optional feature's
    extra; the ``test`` extra does not count."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = [deps for name, deps in project["optional-dependencies"].items() if name != "test"]
    runtime = project["dependencies"] + [d for deps in extras for d in deps]
    declared = {canonicalize_name(Requirement(d).name) for d in runtime}
    providers = metadata.packages_distributions()
    missing = {}
    for path in sorted((REPO / "workflow" / "cacflow").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for top in {n.split(".")[0] for n in names} - {"cacflow"}:
                if top in sys.stdlib_module_names:
                    continue
                dists = {canonicalize_name(d) for d in providers.get(top, [top])}
                if not dists & declared:
                    missing.setdefault(top, path.relative_to(REPO).as_posix())
    assert missing == {}
