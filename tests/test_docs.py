"""The README and docs/ against the code: the Quick start test command is .ci/run's, links and anchors
resolve, and every ``alphagan-video`` command in a shell code block uses options the CLI has."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
FENCE = re.compile(r"^( *)```([\w-]*)\n(.*?)^\1```", re.M | re.S)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _code_blocks(path: Path, languages=("", "bash", "sh", "shell")) -> list[str]:
    return [m[3] for m in FENCE.finditer(path.read_text()) if m[2] in languages]


def _slug(heading: str) -> str:
    # GitHub's anchors: lower case, punctuation dropped (not - or _), spaces to hyphens
    text = re.sub(r"[`*]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text())
    return {_slug(line.lstrip("#")) for line in text.splitlines() if re.match(r"#{1,6} ", line)}


def test_readme_is_a_guide_of_at_most_400_lines():
    assert len(README.read_text().splitlines()) <= 400


def test_readme_test_command_is_what_ci_runs():
    ci = [line for line in (REPO / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.startswith("#") and not line.startswith(("set ", "cd "))]
    (ci_command,) = ci
    commands = [block.strip() for block in _code_blocks(README, ("bash",)) if "-m pytest" in block]
    assert commands[0] == ci_command, "README Quick start command 2 and .ci/run differ"
    assert "ALPHAGAN_BUILD_BPY_VENV=1" in ci_command  # the README says what this builds and where
    assert ".venv-bpy/" in README.read_text()


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda p: p.name)
def test_links_resolve(path):
    text = FENCE.sub("", path.read_text())
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):  # http(s), mailto
            continue
        file, _, anchor = target.partition("#")
        resolved = (path.parent / file).resolve() if file else path
        assert resolved.exists(), f"{path.name}: link to {target} points nowhere"
        if anchor and resolved.suffix == ".md":
            assert anchor in _anchors(resolved), f"{path.name}: no heading for #{anchor} in {resolved.name}"


def _commands(path: Path):
    for block in _code_blocks(path):
        for line in block.replace("\\\n", " ").splitlines():
            if "alphagan-video " not in line:
                continue
            tokens = shlex.split(line, comments=True)
            for at in [i for i, tok in enumerate(tokens) if tok.split("/")[-1] == "alphagan-video"]:
                words = []
                for tok in tokens[at + 1:]:
                    if tok in ("|", ">", "&&", ";") or tok.startswith(">"):
                        break
                    words.append(tok)
                yield line.strip(), words


def _resolve(words: list[str]) -> tuple[click.Command, list[str]]:
    from alphagan_video.cli import main
    command, rest = main, list(words)
    while isinstance(command, click.Group) and rest and rest[0] in command.commands:
        command = command.commands[rest.pop(0)]
    if isinstance(command, click.Group) and command is main:
        command = main.commands["run"]  # alphagan-video INPUT -o OUTPUT is `run`
    return command, rest


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda p: p.name)
def test_commands_use_options_the_cli_has(path):
    for line, words in _commands(path):
        command, rest = _resolve(words)
        params = {opt: p for p in command.params for opt in (*p.opts, *p.secondary_opts)}
        params.update({"-h": None, "--help": None})
        for i, word in enumerate(rest):
            if not word.startswith("-") or word == "-":
                continue
            flag = word.split("=", 1)[0]
            assert flag in params, f"{path.name}: {command.name} has no {flag}: {line}"
            param = params[flag]
            if param is not None and isinstance(param.type, click.Choice) and i + 1 < len(rest):
                value = word.split("=", 1)[1] if "=" in word else rest[i + 1]
                assert value in param.type.choices, f"{path.name}: {flag} {value} is not a choice: {line}"
