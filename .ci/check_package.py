"""Check the built distributions as a partner gets them (run by `tox -e package`).

    python .ci/check_package.py DIST_DIR

DIST_DIR holds what `python -m build` made: one sdist and one wheel. The script

1. reads both archives: each carries every module, template, static file and migration
   of the checkout's `django_biginterview/` and `py.typed`, the wheel nothing else at its
   top level, and the metadata has the checkout's version and the license;
2. installs the wheel into a fresh virtualenv in a temporary folder outside the checkout;
3. from there, with PYTHONPATH and DJANGO_SETTINGS_MODULE cleared, makes a project with
   `django-admin startproject`, adds the app as the README's "Install" section says, and
   runs `manage.py check`, `migrate`, `makemigrations --check` and a lookup of every
   template and static file; `django_biginterview` must be imported from the virtualenv.

It stops at the first failure with a non-zero exit status. `--keep` leaves the temporary
folder in place to look at.
"""

from __future__ import annotations

import argparse
import ast
import email
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
import zipfile
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "django_biginterview"
PACKAGE_DIR = ROOT / PACKAGE
# What a partner's settings add (README, "Install"), besides Django's own apps.
APPS = ["rest_framework", "drf_spectacular", "drf_spectacular_sidecar", PACKAGE]


class CheckFailed(Exception):
    pass


def step(message: str) -> None:
    print(f"-- {message}", flush=True)


def require(condition: object, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def checkout_version() -> str:
    tree = ast.parse((PACKAGE_DIR / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__version__" for target in node.targets
        ):
            return str(ast.literal_eval(node.value))
    raise CheckFailed(f"no __version__ in {PACKAGE}/__init__.py")


def expected_files() -> dict[str, set[str]]:
    """The checkout's files a distribution must carry, by kind, relative to the package."""

    def listing(pattern: str) -> set[str]:
        return {
            path.relative_to(PACKAGE_DIR).as_posix()
            for path in PACKAGE_DIR.glob(pattern)
            if path.is_file() and "__pycache__" not in path.parts
        }

    kinds = {
        "templates": listing("templates/**/*"),
        "static files": listing("static/**/*"),
        "migrations": listing("migrations/*.py"),
        "py.typed": listing("py.typed"),
        "modules": listing("**/*.py"),
    }
    for kind, names in kinds.items():
        require(names, f"the checkout has no {kind} in {PACKAGE}/ (run from a full checkout)")
    return kinds


def missing_report(kinds: dict[str, set[str]], present: set[str], archive: str) -> None:
    problems = []
    for kind, names in kinds.items():
        missing = sorted(names - present)
        if missing:
            shown = ", ".join(missing[:8]) + (", ..." if len(missing) > 8 else "")
            problems.append(f"{len(missing)} of {len(names)} {kind} missing: {shown}")
    require(not problems, f"{archive}:\n  " + "\n  ".join(problems))


def one(dist: Path, pattern: str) -> Path:
    found = sorted(dist.glob(pattern))
    require(len(found) == 1, f"expected one {pattern} in {dist}, found {len(found)}")
    return found[0]


def check_wheel(wheel: Path, version: str, kinds: dict[str, set[str]]) -> None:
    step(f"wheel contents: {wheel.name}")
    dist_info = f"{PACKAGE}-{version}.dist-info"
    require(
        wheel.name == f"{PACKAGE}-{version}-py3-none-any.whl",
        f"wheel {wheel.name} is not {PACKAGE}-{version}-py3-none-any.whl",
    )
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = email.message_from_bytes(archive.read(f"{dist_info}/METADATA"))
    top_level = {PurePosixPath(name).parts[0] for name in names}
    require(
        top_level == {PACKAGE, dist_info},
        f"the wheel's top level is {sorted(top_level)}, not just {PACKAGE}/ and {dist_info}/",
    )
    present = {name.removeprefix(f"{PACKAGE}/") for name in names if name.startswith(PACKAGE)}
    missing_report(kinds, present, wheel.name)
    require(
        metadata["Version"] == version,
        f"METADATA says {metadata['Version']}, the checkout {version}",
    )
    require(metadata["License-Expression"] == "MIT", "METADATA has no License-Expression: MIT")
    require(f"{dist_info}/licenses/LICENSE" in names, "the wheel does not carry LICENSE")
    require(metadata["Requires-Python"], "METADATA has no Requires-Python")
    classifiers = metadata.get_all("Classifier") or []
    print(f"   {sum(len(v) for v in kinds.values())} files checked; {len(classifiers)} classifiers")


def check_sdist(sdist: Path, version: str, kinds: dict[str, set[str]]) -> None:
    step(f"sdist contents: {sdist.name}")
    require(
        sdist.name == f"{PACKAGE}-{version}.tar.gz",
        f"sdist {sdist.name} is not {PACKAGE}-{version}.tar.gz",
    )
    prefix = f"{PACKAGE}-{version}/"
    with tarfile.open(sdist) as archive:
        names = {member.name.removeprefix(prefix) for member in archive.getmembers()}
    missing_report(
        kinds,
        {name.removeprefix(f"{PACKAGE}/") for name in names if name.startswith(PACKAGE)},
        sdist.name,
    )
    for name in ("pyproject.toml", "README.md", "LICENSE", "PKG-INFO"):
        require(name in names, f"{sdist.name} does not carry {name}")


def clean_environment() -> dict[str, str]:
    """The environment without anything that could make the checkout importable."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key
        not in {
            "PYTHONPATH",
            "PYTHONHOME",
            "PYTHONSTARTUP",
            "VIRTUAL_ENV",
            "DJANGO_SETTINGS_MODULE",
        }
    }
    env["PYTHONNOUSERSITE"] = "1"  # no ~/.local site-packages either
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run(command: list[str | Path], cwd: Path, env: dict[str, str]) -> str:
    printable = " ".join("<probe>" if "\n" in str(part) else str(part) for part in command)
    started = time.monotonic()
    result = subprocess.run(  # noqa: S603
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    print(f"   $ {printable}  ({time.monotonic() - started:.1f} s)", flush=True)
    if result.returncode != 0:
        raise CheckFailed(
            f"{printable} exited with {result.returncode}\n{result.stdout}{result.stderr}"
        )
    return result.stdout + result.stderr


SETTINGS_ADDITION = """

# Added by .ci/check_package.py: the app as the README's "Install" section adds it.
INSTALLED_APPS += {apps!r}
BIGINTERVIEW = {{
    "BASE_URL": "https://acme.biginterview.invalid",
    "API_KEY": "package-check-key",
    "WEBHOOK_KEYS": ["package-check-webhook-key"],
}}
"""

URLS_ADDITION = """

# Added by .ci/check_package.py.
from django.urls import include  # noqa: E402

urlpatterns += [path("biginterview/", include("django_biginterview.urls"))]
"""

# Run inside the project with the wheel's virtualenv: where the package, its templates
# and its static files were found.
PROBE = """
import json, sys
import django
django.setup()
from importlib import metadata
import django_biginterview
from django.contrib.staticfiles import finders
from django.template.loader import get_template

templates, statics = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(json.dumps({
    "file": django_biginterview.__file__,
    "version": django_biginterview.__version__,
    "metadata_version": metadata.version("django-biginterview"),
    "templates": {name: get_template(name).origin.name for name in templates},
    "static": {name: finders.find(name) for name in statics},
    "sys_path": sys.path,
}))
"""


def check_installed(wheel: Path, version: str, kinds: dict[str, set[str]], keep: bool) -> None:
    work = Path(tempfile.mkdtemp(prefix="bi-package-check-")).resolve()
    try:
        require(ROOT not in work.parents, f"the temporary folder {work} is inside the checkout")
        env = clean_environment()
        venv = work / "venv"
        python = venv / "bin" / "python"
        step(f"fresh virtualenv in {work}")
        run([sys.executable, "-m", "venv", venv], work, env)
        run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel], work, env)

        step("a project from `django-admin startproject`, outside the checkout")
        project = work / "partnersite"
        project.mkdir()
        run([venv / "bin" / "django-admin", "startproject", "partnersite", project], work, env)
        settings = project / "partnersite" / "settings.py"
        settings.write_text(settings.read_text() + SETTINGS_ADDITION.format(apps=APPS))
        urls = project / "partnersite" / "urls.py"
        urls.write_text(urls.read_text() + URLS_ADDITION)
        env["DJANGO_SETTINGS_MODULE"] = "partnersite.settings"
        manage = [python, project / "manage.py"]

        output = run([*manage, "check", "--fail-level", "ERROR"], project, env)
        print(textwrap.indent(output.strip(), "     "))
        run([*manage, "migrate", "--no-input"], project, env)
        run([*manage, "makemigrations", "--check", "--dry-run", "biginterview"], project, env)
        shown = run([*manage, "showmigrations", "biginterview"], project, env)
        for migration in sorted(kinds["migrations"] - {"migrations/__init__.py"}):
            name = PurePosixPath(migration).stem
            require(f"[X] {name}" in shown, f"migration {name} not applied:\n{shown}")

        step("where the package, its templates and its static files come from")
        templates = sorted(name.removeprefix("templates/") for name in kinds["templates"])
        statics = sorted(name.removeprefix("static/") for name in kinds["static files"])
        probe = json.loads(
            run(
                [python, "-c", PROBE, json.dumps(templates), json.dumps(statics)],
                project,
                env,
            )
            .strip()
            .splitlines()[-1]
        )
        site = venv.resolve()
        require(
            site in Path(probe["file"]).resolve().parents,
            f"django_biginterview was imported from {probe['file']}, not from {site}",
        )
        require(
            not any((project / entry).resolve() == ROOT for entry in probe["sys_path"]),
            f"the checkout {ROOT} is on sys.path: {probe['sys_path']}",
        )
        require(
            probe["version"] == probe["metadata_version"] == version,
            f"versions differ: __version__ {probe['version']}, metadata "
            f"{probe['metadata_version']}, checkout {version}",
        )
        for kind in ("templates", "static"):
            for name, origin in probe[kind].items():
                require(origin, f"{kind[:-1] if kind == 'templates' else kind} {name} not found")
                require(
                    site in Path(origin).resolve().parents,
                    f"{name} was found at {origin}, not in {site}",
                )
        print(f"   {probe['file']}")
        print(f"   {len(templates)} templates and {len(statics)} static files found in the venv")
    finally:
        if keep:
            print(f"   kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dist", type=Path, help="the folder python -m build wrote to")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    started = time.monotonic()
    try:
        version = checkout_version()
        kinds = expected_files()
        dist = args.dist.resolve()
        wheel = one(dist, "*.whl")
        check_wheel(wheel, version, kinds)
        check_sdist(one(dist, "*.tar.gz"), version, kinds)
        check_installed(wheel, version, kinds, args.keep)
    except CheckFailed as failure:
        print(f"\nPACKAGE CHECK FAILED: {failure}", file=sys.stderr)
        return 1
    print(f"\npackage check passed in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
