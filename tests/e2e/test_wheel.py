"""The wheel is complete: built, installed (not editable) into a fresh virtualenv and run from
an unrelated directory, maild works on the data it carries (templates, processes, example config).

How, so that it is honest (the installed wheel is what runs) and fast (well under a minute):

* **Build.** The clone is copied to ``tmp_path/src`` (without .git, .venv, caches, build/ and
  egg-info; the top-level ``templates``/``config`` links stay links) and ``pip wheel --no-deps``
  builds it there. Building in the clone would write ``build/`` into the shared tree, and a stale
  ``build/lib`` would leak deleted files into the wheel. When this interpreter can build wheels
  itself (setuptools>=70.1, or setuptools>=68 plus ``wheel``) the build uses
  ``--no-build-isolation``; otherwise pip's isolated build env fetches setuptools and wheel
  (PyPI, cached by pip after the first run).
* **Install.** ``python -m venv --without-pip NEW``, then this venv's pip installs into it:
  ``pip --python NEW/bin/python install --no-deps --no-index WHEEL``: a plain, non-editable
  install of the wheel and nothing else.
* **Dependencies.** Rather than downloading them on every run, NEW gets one ``.pth`` file naming
  a folder of symlinks to this venv's installed distributions: every top-level entry of its
  site-packages except maild's own (the editable finder and its ``.pth`` hook, the dist-info),
  other ``.pth`` files, pip and setuptools. Nothing in NEW can reach the clone; the test checks
  that maild, its metadata and ``maild.data``'s folders all resolve inside NEW.
* **Run.** From ``tmp_path/elsewhere``: ``maild --version``, ``maild init site``,
  ``maild config check -c site/maild.toml`` and ``maild demo --dir demo``. Before the demo a
  marker line is appended to NEW's installed ``ack.zh.txt.j2``; the demo's 已受理 letters must
  carry the packaged template's text and that marker.
"""

from __future__ import annotations

import email.parser
import email.policy
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from packaging.version import Version

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "maild" / "data"
MARKER = "WHEEL-TEST-MARKER: rendered from the installed wheel"


def _run(cmd: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INPUT"] = "1"
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"{' '.join(map(str, cmd))} (in {cwd}) exited {proc.returncode}\n"
        f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}")
    return proc


def _can_build_offline() -> bool:
    """Whether this interpreter's setuptools can build the wheel without build isolation."""
    try:
        import setuptools
    except ImportError:
        return False
    version = Version(setuptools.__version__)
    has_wheel = importlib.util.find_spec("wheel") is not None
    return version >= Version("70.1") or (version >= Version("68") and has_wheel)


def _build_wheel(tmp_path: Path) -> Path:
    src, out = tmp_path / "src", tmp_path / "wheelhouse"
    shutil.copytree(REPO, src, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "*.pyc", ".*_cache",
        ".hypothesis", "var"))
    cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", out, src]
    if _can_build_offline():
        cmd.insert(4, "--no-build-isolation")
    _run(cmd, cwd=tmp_path, timeout=300)
    (wheel,) = out.glob("maild-*.whl")
    return wheel


def _check_wheel_contents(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"maild/data/{p.relative_to(DATA).as_posix()}" for p in DATA.rglob("*")
               if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
    assert len([n for n in shipped if n.startswith("maild/data/templates/email/")]) >= 150
    assert "maild/data/config/maild.example.toml" in shipped
    assert {f"maild/data/config/processes/{p}.toml"
            for p in ("customer", "internal", "supplier")} <= shipped
    missing = sorted(shipped - names)
    assert not missing, f"the wheel lacks {len(missing)} data files, e.g. {missing[:5]}"
    # only the package and its metadata: no tests, no top-level templates/ or config/ links
    tops = {n.split("/", 1)[0] for n in names}
    assert tops == {"maild", "-".join(wheel.name.split("-")[:2]) + ".dist-info"}, tops
    assert not [n for n in names if n.endswith((".pyc", ".pyo")) or "__pycache__" in n]


def _dependency_farm(tmp_path: Path) -> Path:
    """Symlinks to this venv's installed distributions, maild's own entries left out."""
    farm = tmp_path / "deps"
    farm.mkdir()
    skip = {"maild", "pip", "setuptools", "pkg_resources", "_distutils_hack", "__pycache__"}
    for lib in dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]):
        for entry in Path(lib).iterdir():
            name = entry.name
            if name.endswith((".dist-info", ".egg-info")):
                name = name.split("-", 1)[0]
            if (name.lower() in skip or name.startswith("__editable__")
                    or name.endswith((".pth", ".egg-link")) or (farm / entry.name).exists()):
                continue
            (farm / entry.name).symlink_to(entry)
    return farm


PROBE = """
import importlib.metadata as md, json, sys
import maild, maild.data
dist = md.distribution("maild")
print(json.dumps({
    "maild": maild.__file__,
    "templates": str(maild.data.templates_dir()),
    "processes": str(maild.data.processes_dir()),
    "dist": str(dist.locate_file("")),
    "direct_url": dist.read_text("direct_url.json"),
    "dists": [str(d._path) for d in md.distributions(name="maild")],
    "editable": [m for m in sys.modules if "editable" in m],
    "path": sys.path,
}))
"""


def _letters(sent: Path) -> list[email.message.EmailMessage]:
    parser = email.parser.BytesParser(policy=email.policy.default)
    return [parser.parsebytes(p.read_bytes())  # type: ignore[misc]
            for p in sorted(sent.rglob("*")) if p.is_file()]


def _text(msg: email.message.EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else ""


def test_wheel_installs_and_runs_from_anywhere(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    _check_wheel_contents(wheel)

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path)
    py, maild = venv / "bin" / "python", venv / "bin" / "maild"
    _run([sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-deps",
          "--no-index", wheel], cwd=tmp_path)
    site = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                     cwd=tmp_path).stdout.strip())
    (site / "_maild_wheel_test_deps.pth").write_text(f"{_dependency_farm(tmp_path)}\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = json.loads(_run([py, "-c", PROBE], cwd=elsewhere).stdout)
    for key in ("maild", "templates", "processes", "dist"):
        assert Path(probe[key]).is_relative_to(site), (key, probe[key])
    assert probe["dists"] and all(Path(d).is_relative_to(site) for d in probe["dists"])
    assert '"editable"' not in (probe["direct_url"] or ""), probe["direct_url"]
    assert not probe["editable"], probe["editable"]
    assert not [p for p in probe["path"] if p and Path(p).resolve().is_relative_to(REPO)]

    version = _run([maild, "--version"], cwd=elsewhere)
    assert "0.1.0" in version.stdout + version.stderr
    _run([maild, "init", "site"], cwd=elsewhere)
    assert (elsewhere / "site" / "maild.toml").is_file()
    _run([maild, "config", "check", "-c", "site/maild.toml"], cwd=elsewhere)

    ack = Path(probe["templates"]) / "ack.zh.txt.j2"
    packaged = ack.read_text(encoding="utf-8")
    assert "我们已收到您的" in packaged and packaged.startswith("Subject: 已受理：")
    ack.write_text(packaged.rstrip("\n") + f"\n{MARKER}\n", encoding="utf-8")
    _run([maild, "demo", "--dir", "demo"], cwd=elsewhere)

    letters = _letters(elsewhere / "demo" / "var" / "sent")
    assert letters, "the demo wrote no letters"
    acks = [m for m in letters if "已受理：" in str(m["Subject"])]
    assert acks, sorted(str(m["Subject"]) for m in letters)
    for msg in acks:
        body = _text(msg)
        assert "我们已收到您的" in body and MARKER in body, body
