"""Developer sessions: ``nox -s tests lint typing bench demo``."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["tests", "lint", "typing"]

PYPROJECT = nox.project.load_toml("pyproject.toml")


def install_group(session: nox.Session, *groups: str, extras: str = "cli") -> None:
    session.install("-e", f".[{extras}]")
    for group in groups:
        session.install(*nox.project.dependency_groups(PYPROJECT, group))


@nox.session
def tests(session: nox.Session) -> None:
    install_group(session, "test", extras="cli,fastapi")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    install_group(session, "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typing(session: nox.Session) -> None:
    install_group(session, "typing", "test", extras="cli,fastapi")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    install_group(session, "bench")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session
def soak(session: nox.Session) -> None:
    install_group(session)
    session.run("python", "-m", "benchmarks.soak", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    install_group(session)
    session.run("eattest", "demo", *session.posargs)
