"""Every version pin is written once, in requirements/*.txt.

envs/*.yaml (snakemake --use-conda) and scripts/{setup,install-train-env}.sh (the venvs) install
those files with ``-r``. The only pins written elsewhere are TensorFlow (SEGSCALE_TF's default in
install-train-env.sh, the one pip line of envs/train.yaml) and Horovod (HOROVOD_VERSION, and
envs/train.post-deploy.sh, which builds it); those must agree with each other.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
REQUIREMENTS = REPO / "requirements"
ENVS = REPO / "envs"
SCRIPTS = REPO / "scripts"

REQ_FILES = sorted(REQUIREMENTS.glob("*.txt"))
ENV_FILES = sorted(ENVS.glob("*.yaml"))
# Shell scripts that install things or document installs; scanned for stray pins.
SHELL_FILES = sorted([*SCRIPTS.rglob("*.sh"), *ENVS.glob("*.sh")])

INCLUDE = re.compile(r"^(?:-r|--requirement)(?:\s+|=)(\S+)$")
PIN_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==(\S+)$")
# A pin anywhere in a text (comments included): name[extras]==version, no spaces around ==
# (bash's `[[ a == b ]]` and awk's `x == 1` have them).
PIN_IN_TEXT = re.compile(
    r"(?<![\w.\-\[\]])([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]\s]*\])?==([0-9][^\s'\"#;,)}]*)")
DIGEST_LINE = re.compile(r"^# requirements digest: ([0-9a-f]+)$", re.M)
# The pins allowed outside requirements/ (see the module docstring).
OWN_PINS = ("tensorflow", "horovod")


def normalize(name: str) -> str:
    """PEP 503 project name: case- and separator-insensitive."""
    return re.sub(r"[-_.]+", "-", name).lower()


def family(name: str) -> str | None:
    """'tensorflow' for tensorflow, tensorflow-cpu, tensorflow[and-cuda]; likewise horovod."""
    norm = normalize(name)
    return next((own for own in OWN_PINS if norm == own or norm.startswith(own + "-")), None)


def strip_comment(line: str) -> str:
    return re.sub(r"(^|\s)#.*$", "", line).strip()


def parse_requirements(path: Path) -> tuple[list[tuple[str, str]], list[Path]]:
    """(pins as (normalized name, version), included files) written in ``path`` itself."""
    pins, includes = [], []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = strip_comment(raw)
        if not line:
            continue
        if include := INCLUDE.match(line):
            includes.append((path.parent / include.group(1)).resolve())
        elif "==" in line:
            pin = PIN_LINE.match(line)
            assert pin, f"{path.name}:{number}: not a plain name==version pin: {raw!r}"
            pins.append((normalize(pin.group(1)), pin.group(3)))
    return pins, includes


def closure(path: Path, _seen: tuple[Path, ...] = ()) -> list[Path]:
    """``path`` and every file it includes, recursively, in pip's reading order."""
    path = path.resolve()
    assert path not in _seen, f"include cycle: {' -> '.join(p.name for p in (*_seen, path))}"
    assert path.is_file(), f"{_seen[-1].name if _seen else '?'} includes missing {path}"
    assert path.parent == REQUIREMENTS.resolve(), f"{path} is outside requirements/"
    files = [path]
    for included in parse_requirements(path)[1]:
        files += [f for f in closure(included, (*_seen, path)) if f not in files]
    return files


def digest(files: list[Path]) -> str:
    """What a conda env file records so that editing a pin changes the file's content, hence
    snakemake's env hash (which covers the yaml, not the files it includes)."""
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(REPO.resolve()).as_posix().encode() + b"\n" + f.read_bytes())
    return h.hexdigest()[:16]


def pip_section(env_file: Path) -> list[str]:
    spec = yaml.safe_load(env_file.read_text())
    sections = [d["pip"] for d in spec.get("dependencies", [])
                if isinstance(d, dict) and "pip" in d]
    assert len(sections) == 1, f"{env_file.name}: expected one pip section, found {len(sections)}"
    return [str(entry).strip() for entry in sections[0]]


def env_requirements(env_file: Path) -> list[Path]:
    """The requirements files an env's pip section names with -r (relative to envs/, as conda
    runs pip there)."""
    return [(env_file.parent / m.group(1)).resolve()
            for m in map(INCLUDE.match, pip_section(env_file)) if m]


def script_setting(script: str, pattern: str) -> str:
    match = re.search(pattern, (SCRIPTS / script).read_text(), re.M)
    assert match, f"scripts/{script}: no match for {pattern!r}"
    return match.group(1)


def test_there_is_something_to_check():
    names = {p.name for p in REQ_FILES}
    assert {"data.txt", "plot.txt", "workflow.txt", "train.txt"} <= names
    assert {"data.yaml", "plot.yaml", "train.yaml"} <= {p.name for p in ENV_FILES}


@pytest.mark.parametrize("req", REQ_FILES, ids=lambda p: p.name)
def test_includes_resolve(req):
    closure(req)


def test_each_pin_is_written_once():
    where: dict[tuple[str, str], list[str]] = defaultdict(list)
    for req in REQ_FILES:
        for pin in parse_requirements(req)[0]:
            where[pin].append(req.name)
    repeated = {f"{name}=={version}": files for (name, version), files in where.items()
                if len(files) > 1}
    assert not repeated, f"pins written more than once (move them to a shared file): {repeated}"


@pytest.mark.parametrize("req", REQ_FILES, ids=lambda p: p.name)
def test_one_version_per_package_in_an_install(req):
    """A file and what it includes pin each package once (pip refuses two versions)."""
    where: dict[str, list[str]] = defaultdict(list)
    for f in closure(req):
        for name, version in parse_requirements(f)[0]:
            where[name].append(f"{f.name}: {version}")
    assert not {n: v for n, v in where.items() if len(v) > 1}


def test_tensorflow_and_horovod_are_not_in_requirements():
    """They are set where they are built: SEGSCALE_TF / HOROVOD_VERSION, envs/train.yaml."""
    for req in REQ_FILES:
        assert not [n for n, _ in parse_requirements(req)[0] if family(n)], req.name


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_env_pip_section_uses_requirements(env_file):
    reqs = env_requirements(env_file)
    assert reqs, f"{env_file.name}: the pip section names no requirements file (-r ...)"
    for req in reqs:
        assert req.is_file(), f"{env_file.name}: {req} does not exist"
        closure(req)
    pins = [e for e in pip_section(env_file) if "==" in e]
    if env_file.name == "train.yaml":
        assert len(pins) == 1 and family(PIN_LINE.match(pins[0]).group(1)) == "tensorflow", pins
    else:
        assert not pins, f"{env_file.name}: pins belong in requirements/: {pins}"


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_env_records_the_digest_of_its_requirements(env_file):
    files: list[Path] = []
    for req in env_requirements(env_file):
        files += [f for f in closure(req) if f not in files]
    want = digest(files)
    found = DIGEST_LINE.findall(env_file.read_text())
    assert found == [want], (
        f"{env_file.name}: a pin in {', '.join(f.name for f in files)} changed; for snakemake to "
        f"rebuild the env, its file must change too: set the line to "
        f"'# requirements digest: {want}'")


def test_no_pins_outside_requirements_but_tensorflow_and_horovod():
    tf_default = script_setting("install-train-env.sh", r"^TF_REQ=\$\{SEGSCALE_TF:-([^}]+)\}$")
    tf_version = PIN_LINE.match(tf_default).group(3)
    horovod_version = script_setting("install-train-env.sh", r"^HOROVOD_VERSION=(\S+)$")
    want = {"tensorflow": tf_version, "horovod": horovod_version}
    stray, disagree = [], []
    for f in [*ENV_FILES, *SHELL_FILES]:
        for number, line in enumerate(f.read_text().splitlines(), 1):
            for m in PIN_IN_TEXT.finditer(line):
                where = f"{f.relative_to(REPO)}:{number}: {m.group(0)}"
                own = family(m.group(1))
                if own is None:
                    stray.append(where)
                elif m.group(3) != want[own]:
                    disagree.append(f"{where} (want {own} {want[own]})")
    assert not stray, f"pins outside requirements/: {stray}"
    assert not disagree, f"TensorFlow/Horovod versions disagree: {disagree}"


@pytest.mark.parametrize(("script", "req"), [("setup.sh", "requirements/workflow.txt"),
                                             ("install-train-env.sh", "requirements/train.txt")])
def test_install_scripts_use_requirements(script, req):
    assert req in (SCRIPTS / script).read_text()
